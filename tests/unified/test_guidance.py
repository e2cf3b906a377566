"""Classifier-free guidance inside Tar: prompt dropout in training, the null prompt, guided decoding."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.lm import SamplingConfig
from dialect.unified import ShapeWorldTasks, TaskConfig
from dialect.unified.template import ImageSpan, Null, encode_conversation, null_conversation

from .micro import WORLD, tar, vocab


def test_null_conversation_nulls_only_the_user_text_and_keeps_the_length():
    v = vocab()
    span = ImageSpan(torch.arange(16), 0)
    turns = [("user", ["make the circle blue", span]), ("assistant", ["a red circle"])]
    ids, mask = encode_conversation(v, turns)
    null_ids, null_mask = encode_conversation(v, null_conversation(turns))
    assert len(null_ids) == len(ids) and null_mask == mask
    changed = [i for i, (a, b) in enumerate(zip(ids, null_ids, strict=True)) if a != b]
    n_words = len(v.encode_text("make the circle blue"))
    assert len(changed) == n_words and all(null_ids[i] == v.pad_id for i in changed)
    assert changed == list(range(1, 1 + n_words))  # right after <|user|>: the instruction only
    assert null_conversation(turns)[0][1][1] is span  # images are kept as they are
    # the image twin: the frame <im_start> <S_0> ... <im_end> stays, every code becomes [PAD]
    img_ids, img_mask = encode_conversation(v, null_conversation(turns, "image"))
    assert len(img_ids) == len(ids) and img_mask == mask
    changed = [i for i, (a, b) in enumerate(zip(ids, img_ids, strict=True)) if a != b]
    start = 1 + n_words + 2  # <|user|>, the instruction, <im_start>, <S_0>
    assert changed == list(range(start, start + 16)) and all(img_ids[i] == v.pad_id for i in changed)
    with pytest.raises(DialectError, match="null kind"):
        null_conversation(turns, "audio")


def test_t2i_drop_nulls_that_share_of_prompts_and_zero_keeps_the_data_bit_for_bit():
    base = TaskConfig(weights={"t2i": 1.0, "vqa": 1.0})
    plain = ShapeWorldTasks(base, WORLD, 3, seed=3)
    dropped = ShapeWorldTasks(TaskConfig(weights={"t2i": 1.0, "vqa": 1.0}, t2i_drop=0.3), WORLD, 3, seed=3)
    metas = [dropped[i]["meta"] for i in range(400)]
    t2i = [m for m in metas if m["task"] == "t2i"]
    share = sum(m.get("null_prompt", False) for m in t2i) / len(t2i)
    assert 0.2 < share < 0.4
    assert not any(m.get("null_prompt") for m in metas if m["task"] != "t2i")
    assert not any("null_prompt" in plain[i]["meta"] for i in range(100))
    assert all(plain[i]["meta"] == ShapeWorldTasks(base, WORLD, 3, seed=3)[i]["meta"] for i in range(20))
    with pytest.raises(DialectError, match="t2i_drop"):
        TaskConfig(t2i_drop=1.0).validate(3)
    edits = ShapeWorldTasks(TaskConfig(weights={"ti2i": 1.0}, ti2i_image_drop=0.5), WORLD, 3, seed=3)
    flags = [edits[i]["meta"].get("null_image", False) for i in range(60)]
    assert 0.25 < sum(flags) / 60 < 0.75
    # instruction dropout: its own share, drawn after the image's, so image-only runs keep their draws
    both = ShapeWorldTasks(
        TaskConfig(weights={"ti2i": 1.0}, ti2i_image_drop=0.5, ti2i_text_drop=0.5), WORLD, 3, seed=3
    )
    metas = [both[i]["meta"] for i in range(60)]
    assert [m.get("null_image", False) for m in metas] == flags
    assert 0.25 < sum(m.get("null_text", False) for m in metas) / 60 < 0.75
    assert any(m.get("null_text") and m.get("null_image") for m in metas)
    with pytest.raises(DialectError, match="ti2i_text_drop"):
        TaskConfig(ti2i_text_drop=-0.1).validate(3)


def _with_and_without(m, flag: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """A training sample of m's task mix drawn with meta `flag` set -> (sample, its ids, the ids of
    the same sample with the flag removed), both with the same loss mask (asserted)."""
    ds = ShapeWorldTasks(m.config.tasks, WORLD, 3, seed=1)
    sample = ds[next(i for i in range(50) if ds[i]["meta"].get(flag))]
    ids, mask = m.batch_sequences(collate([sample]))
    kept = dict(sample, meta={k: v for k, v in sample["meta"].items() if k != flag})
    ids_kept, mask_kept = m.batch_sequences(collate([kept]))
    assert torch.equal(mask, mask_kept) and ids.shape == ids_kept.shape
    return sample, ids, ids_kept


def test_a_dropped_prompt_trains_on_pad_ids_with_the_same_loss_mask():
    m = tar(tasks=TaskConfig(weights={"t2i": 1.0}, t2i_drop=0.5))
    sample, ids, ids_kept = _with_and_without(m, "null_prompt")
    user = ids[0, 1 : 1 + len(m.vocab.encode_text(sample["meta"]["user"]))]
    assert bool((user == m.vocab.pad_id).all())
    assert torch.equal(ids[0, 1 + len(user) :], ids_kept[0, 1 + len(user) :])


@pytest.mark.parametrize("image_last", [False, True])
def test_a_dropped_instruction_trains_on_pad_ids_and_keeps_the_image(image_last):
    m = tar(tasks=TaskConfig(weights={"ti2i": 1.0}, ti2i_text_drop=0.5), image_last=image_last)
    sample, ids, ids_kept = _with_and_without(m, "null_text")
    changed = (ids != ids_kept)[0].nonzero().flatten()
    assert len(changed) == len(m.vocab.encode_text(sample["meta"]["user"]))
    assert bool((ids[0, changed] == m.vocab.pad_id).all())  # the instruction only, as [PAD]
    assert m.config.tasks.edit_null() == "instruction" and TaskConfig().edit_null() == "image"


def test_guidance_against_an_identical_twin_is_plain_sampling():
    m = tar().eval()
    ids = torch.tensor([[5, 9, 14, 3], [7, 2, 8, 1]])
    plain = m.lm.generate(
        None, 6, SamplingConfig(temperature=1.0), generator=torch.Generator().manual_seed(0), ids=ids
    )
    twin = m.lm.generate(
        None, 6, SamplingConfig(temperature=1.0, cfg_scale=3.0), generator=torch.Generator().manual_seed(0),
        ids=ids, uncond_ids=ids.clone(),
    )  # fmt: skip
    assert torch.equal(plain, twin)
    with pytest.raises(ValueError, match="uncond_ids"):
        m.lm.generate(None, 2, SamplingConfig(cfg_scale=2.0), ids=ids, uncond_ids=ids[:, :3])
    with pytest.raises(ValueError, match="uncond_prefix or uncond_ids"):
        m.lm.generate(None, 2, SamplingConfig(cfg_scale=2.0), ids=ids)


def test_tar_guidance_needs_prompt_dropout_and_keeps_the_image_span():
    convs = [[("user", ["a red ball"])], [("user", ["two blue boxes above a cross"])]]
    guided = SamplingConfig(temperature=1.0, cfg_scale=3.0)
    with pytest.raises(DialectError, match="t2i_drop"):
        tar().eval().generate_codes(convs, 0, guided)
    with pytest.raises(DialectError, match="ti2i_image_drop"):
        tar(tasks=TaskConfig(t2i_drop=0.1)).eval().generate_codes(convs, 0, guided, null="image")
    with pytest.raises(DialectError, match="ti2i_text_drop"):
        tar(tasks=TaskConfig(ti2i_image_drop=0.1)).eval().generate_codes(convs, 0, guided, null="instruction")
    with pytest.raises(DialectError, match="null must be one of text, image, instruction"):
        tar().eval().generate_codes(convs, 0, guided, null="audio")
    m = tar(tasks=TaskConfig(t2i_drop=0.1)).eval()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    codes = m.generate_codes(convs, 1, guided, gen())
    assert codes.shape == (2, m.tatok.num_tokens(1))
    assert int(codes.min()) >= 0 and int(codes.max()) < m.vocab.config.num_image_codes
    # the null prompt differs from the prompt, so guidance changes what is drawn
    plain = m.generate_codes(convs, 0, SamplingConfig(temperature=0.0), gen())
    strong = m.generate_codes(convs, 0, SamplingConfig(temperature=0.0, cfg_scale=8.0), gen())
    assert not torch.equal(plain, strong)
    assert isinstance(null_conversation(convs[0])[0][1][0], Null)


def test_cli_guided_generation_and_geneval(tmp_path, monkeypatch, capsys):
    import json

    from detok.test_ar import _model as micro_ar
    from dialect.cli.main import main
    from dialect.eval import generation

    for drop in (0.0, 0.1):  # a model without prompt dropout, and one with
        m = tar(tasks=TaskConfig(t2i_drop=drop))
        m.save_pretrained(tmp_path / f"m{drop}" / "tar")
        ar = micro_ar()
        ar.condition.load_tatok(m.tatok)
        ar.save_pretrained(tmp_path / f"m{drop}" / "ar")
    orig = generation.geneval_mini
    monkeypatch.setattr(
        generation, "geneval_mini", lambda *a, **k: orig(*a, world=WORLD, progress=False, **k)
    )
    ok, plain = tmp_path / "m0.1", tmp_path / "m0.0"
    args = ["--scale", "2", "--cfg-scale", "3"]
    assert main(["generate", "a red ball", "--model", str(ok), "-o", str(tmp_path / "g.png"), *args]) == 0
    out = tmp_path / "geneval"
    assert main(["eval", "geneval", "--model", str(ok), "--n", "1", "--out", str(out), *args]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["lm_cfg_scale"] == 3.0 and res["sampling"] == {"cfg_scale": 3.0}
    capsys.readouterr()
    assert main(["generate", "a red ball", "--model", str(plain), "-o", str(tmp_path / "p.png"), *args]) == 2
    assert "prompt dropout" in capsys.readouterr().err
    for bad in (["--cfg-scale", "nan"], ["--temperature", "-1"]):  # one line on stderr, exit 2
        assert main(["generate", "a red ball", "--model", str(ok), "-o", str(tmp_path / "b.png"), *bad]) == 2
        assert capsys.readouterr().err.startswith("dialect: error: ")
    assert main(["eval", "vqa", "--model", str(ok), "--cfg-scale", "3", "--out", str(out)]) == 2
    assert "image-drawing benchmarks only" in capsys.readouterr().err


def _micro_dialect(folder, tasks: TaskConfig):
    """A saved micro Tar (image_last) trained with `tasks`, and a micro AR-DTok, loaded as a Dialect."""
    from detok.test_ar import _model as micro_ar
    from dialect.unified.pipeline import Dialect

    m = tar(tasks=tasks, image_last=True)
    m.save_pretrained(folder / "tar")
    ar = micro_ar()
    ar.condition.load_tatok(m.tatok)
    ar.save_pretrained(folder / "ar")
    return Dialect.from_pretrained(folder)


def test_edit_guidance_on_the_input_image_changes_the_edit_and_keeps_its_span(tmp_path):
    d = _micro_dialect(tmp_path, TaskConfig(ti2i_image_drop=0.1))
    image = torch.zeros(1, 3, 16, 16)
    span = d.tar.image_spans(image)[0]
    convs = [[("user", ["make the circle blue", span])]]
    greedy = lambda cfg: SamplingConfig(temperature=0.0, cfg_scale=cfg)  # noqa: E731
    plain = d.tar.generate_codes(convs, 0, greedy(1.0), null="image")
    guided = d.tar.generate_codes(convs, 0, greedy(8.0), null="image")
    assert plain.shape == guided.shape == (1, 16) and not torch.equal(plain, guided)
    out = d.edit(image, "make the circle blue", cfg_scale=2.0, scale=2)
    assert out.shape == (1, 3, 16, 16)


def test_edit_guidance_on_the_instruction_nulls_the_text_and_keeps_the_image(tmp_path, monkeypatch):
    d = _micro_dialect(tmp_path, TaskConfig(ti2i_text_drop=0.1))
    seen = []
    orig = d.tar.lm.generate

    def spy(*a, **k):
        seen.append((k["ids"], k["uncond_ids"]))
        return orig(*a, **k)

    monkeypatch.setattr(d.tar.lm, "generate", spy)
    out = d.edit(torch.zeros(1, 3, 16, 16), "make the circle blue", cfg_scale=3.0, scale=2)
    assert out.shape == (1, 3, 16, 16)
    (ids, null_ids), v = seen[0], d.tar.vocab
    changed = (ids != null_ids)[0].nonzero().flatten()
    assert len(changed) == len(v.encode_text("make the circle blue"))  # the instruction, not the image
    assert bool((null_ids[0, changed] == v.pad_id).all())
