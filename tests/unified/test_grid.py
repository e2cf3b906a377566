"""2-D image positions (`TarConfig.image_positions="2d"`): which tokens get which grid cell, a new
model equals a "1d" one, decoding adds the same positions training does, and it still learns."""

import pytest
import torch
import torch.nn.functional as F

from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.lm import SamplingConfig
from dialect.unified import Tar
from dialect.unified.template import encode_conversation
from dialect.unified.vocab import IM_START

from .micro import tar
from .test_model import _handful


def test_cells_follow_each_image_span_by_position():
    m = tar(image_positions="2d")
    v, grid = m.vocab, m.grid
    assert grid.counts == [16, 4, 1] and grid.offsets == [0, 16, 20]
    start, s0, s1 = v.special(IM_START), v.scale_id(0), v.scale_id(1)
    img = v.image_offset
    text = 5
    row = [text, start, s0, *[img] * 16, text, start, s1, *[img + 3] * 2]  # the second span is cut short
    cells = grid.cells(torch.tensor([row]))[0].tolist()
    assert cells == [-1, -1, -1, *range(16), -1, -1, -1, 16, 17]
    alone = grid.cells(torch.tensor([[text, start]]))  # <im_start> at the end: nothing follows yet
    assert alone.tolist() == [[-1, -1]]
    with pytest.raises(DialectError, match="image_positions"):
        tar(image_positions="3d")


def test_a_new_2d_model_computes_what_the_1d_model_does():
    one, two = tar(seed=3), tar(seed=3, image_positions="2d")
    missing = two.load_state_dict(one.state_dict(), strict=False).missing_keys
    assert missing == ["grid.cell.weight"]
    batch = collate([s for t in ("vqa", "t2i") for s in _handful(t, 2)])
    assert torch.allclose(one.training_losses(batch)["loss"], two.training_losses(batch)["loss"])


def test_decoding_adds_the_positions_training_adds():
    m = tar(seed=1, image_positions="2d").eval()
    torch.nn.init.normal_(m.grid.cell.weight, std=1.0)  # large, so a misplaced cell changes the argmax
    v = m.vocab
    turns = [("user", ["a red ball"])]
    greedy = SamplingConfig(temperature=0.0)
    codes = m.generate_codes([turns], 0, greedy)[0]
    prompt = encode_conversation(v, turns, add_generation_prompt=True)[0]
    full = torch.tensor([prompt + [v.special(IM_START), v.scale_id(0)] + v.image_ids(codes).tolist()])
    with torch.no_grad():  # teacher-forced, with the training-time bias: the same greedy choices
        logits = m.lm(full[:, :-1], token_bias=m.position_bias(full[:, :-1]))
    n = len(codes)
    forced = logits[0, -n:, v.image_range].argmax(-1)
    assert torch.equal(forced, codes)
    with torch.no_grad():  # and the bias matters: without it the choices differ
        plain = m.lm(full[:, :-1])[0, -n:, v.image_range].argmax(-1)
    assert not torch.equal(plain, codes)
    # text replies after an image: prompt positions come from the same grid
    img = m.image_spans(torch.zeros(1, 3, 16, 16))[0]
    reply = m.generate_text([[("user", [img, "describe the image."])]], 6)
    assert isinstance(reply[0], str)


def test_a_micro_2d_model_learns_and_round_trips(tmp_path):
    torch.manual_seed(0)
    m = tar(image_positions="2d")
    batch = collate([s for t in ("vqa", "t2i", "i2i") for s in _handful(t, 2)])
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(30):
        loss = m.training_losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert m.grid.cell.weight.abs().sum() > 0  # the positions were trained
    m.save_pretrained(tmp_path / "tar")
    n = Tar.from_pretrained(tmp_path / "tar")
    assert n.config.image_positions == "2d" and torch.equal(n.grid.cell.weight, m.grid.cell.weight)
    ids, _ = m.batch_sequences(batch)
    a = m.lm(ids, token_bias=m.position_bias(ids))
    b = n.lm(ids, token_bias=n.position_bias(ids))
    assert torch.allclose(F.softmax(a, -1), F.softmax(b, -1), atol=1e-6)
