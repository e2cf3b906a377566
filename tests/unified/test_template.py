"""The chat template: which tokens carry the loss, and how images are spelled."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.unified.template import ImageSpan, encode_conversation, pad_batch
from dialect.unified.vocab import END, IM_END, IM_START, role_token

from .micro import vocab


def test_loss_mask_covers_exactly_the_assistant_turns():
    v = vocab()
    img = ImageSpan(torch.tensor([3, 1, 4, 1]), scale=1)
    turns = [
        ("system", ["you draw shapes."]),
        ("user", [img, "what color is the circle?"]),
        ("assistant", ["red"]),
        ("user", ["now draw it"]),
        ("assistant", [img]),
    ]
    ids, mask = encode_conversation(v, turns)
    assert len(ids) == len(mask)
    # rebuild the expected mask turn by turn, independently of the implementation
    expected = []
    for role, segs in turns:
        n_body = sum(len(v.encode_text(s)) if isinstance(s, str) else 4 + 3 for s in segs) + 1
        expected += [0] + [int(role == "assistant")] * n_body
    assert mask == expected
    picked = [v.token_strings([i])[0] for i, m in zip(ids, mask, strict=True) if m]
    assert picked == ["red", END, IM_START, "<S1>", "<I3>", "<I1>", "<I4>", "<I1>", IM_END, END]
    assert v.token_strings([ids[0]]) == [role_token("system")]


def test_generation_prompt_and_padding():
    v = vocab()
    ids, mask = encode_conversation(v, [("user", ["a red ball"])], add_generation_prompt=True)
    assert ids[-1] == v.special(role_token("assistant")) and sum(mask) == 0
    x, m = pad_batch([[5, 6, 7], [8]], [[0, 1, 1], [1]], v.pad_id)
    assert x.tolist() == [[5, 6, 7], [8, v.pad_id, v.pad_id]]
    assert m.tolist() == [[0, 1, 1], [1, 0, 0]]


def test_bad_roles_segments_and_scales_are_clear_errors():
    v = vocab()
    with pytest.raises(DialectError, match="role"):
        encode_conversation(v, [("robot", ["hi"])])
    with pytest.raises(DialectError, match="segment"):
        encode_conversation(v, [("user", [42])])
    with pytest.raises(DialectError, match="scale"):
        encode_conversation(v, [("user", [ImageSpan(torch.tensor([1]), scale=7)])])


@pytest.mark.parametrize("image_last", [False, True])
def test_image_last_puts_the_output_image_at_a_fixed_offset_from_the_input(image_last):
    """`TarConfig.image_last`: an edit prompt is [instruction, image], so the distance from input
    token j to output token j is the same for instructions of any length (and not without it)."""
    from dialect.unified.tasks import conversation

    v = vocab()
    src = ImageSpan(torch.tensor([3, 1, 4, 1]), scale=1)
    out = ImageSpan(torch.tensor([2, 7, 1, 8]), scale=1)
    offsets = set()
    for instruction in ("make it red.", "move the small blue circle to the left of the big square."):
        meta = {"task": "ti2i", "user": instruction, "answer": ""}
        turns = conversation(meta, src, out, image_last=image_last)
        assert turns[0][1] == ([instruction, src] if image_last else [src, instruction])
        ids, _ = encode_conversation(v, turns)
        start = v.special(IM_START)
        first_in, first_out = [i for i, t in enumerate(ids) if t == start]
        offsets.add(first_out - first_in)
    assert (len(offsets) == 1) == image_last


@pytest.mark.parametrize("question_first", [False, True])
def test_question_first_puts_the_request_before_the_image_of_the_first_turn_only(question_first):
    """`TarConfig.question_first`: a caption / VQA sample's first user turn is [request, image];
    later turns are text alone either way, and edits keep their own order (`image_last`)."""
    from dialect.unified.tasks import conversation

    src = ImageSpan(torch.tensor([3, 1, 4, 1]), scale=1)
    meta = {"task": "vqa", "user": "what color is it?", "answer": "red", "turns": [("how many?", "1")]}
    turns = conversation(meta, src, None, question_first=question_first)
    assert turns[0] == ("user", ["what color is it?", src] if question_first else [src, "what color is it?"])
    assert turns[1:] == [("assistant", ["red"]), ("user", ["how many?"]), ("assistant", ["1"])]
    edit = {"task": "ti2i", "user": "make it red.", "answer": ""}
    assert conversation(edit, src, src, question_first=question_first)[0][1] == [src, "make it red."]
    ids, mask = encode_conversation(vocab(), turns)
    assert len(ids) == len(mask) and sum(mask) > 0
