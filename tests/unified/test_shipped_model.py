"""The model shipped inside the package: present, small, loads without training, and works."""

from pathlib import Path

import pytest
import torch

from dialect.unified.pipeline import Dialect, default_model_path
from dialect.world import WorldConfig, make_example


def test_shipped_model_is_present_and_within_60_mb():
    root = default_model_path()
    assert (root / "tar" / "config.json").is_file() and (root / "ar" / "config.json").is_file()
    assert (root / "README.md").is_file()  # the model card
    size = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())
    assert size <= 60 * 2**20


@pytest.fixture(scope="module")
def shipped():
    torch.manual_seed(0)
    return Dialect.from_pretrained()


def test_shipped_model_answers_colour_questions_better_than_chance(shipped):
    hits = total = 0
    for i in range(40):
        ex = make_example(i, 123, WorldConfig(), "train", with_edits=False)
        qs = [q for q in ex["qa"] if q["type"] == "color"]
        if not qs:
            continue
        got = shipped.ask(ex["image"], [q["question"] for q in qs[:1]] * 1)
        hits += got[0] == qs[0]["answer"]
        total += 1
    assert total >= 10 and hits / total > 1 / 6 + 0.15  # six colours: chance is 1/6


def test_shipped_model_generates_and_captions(shipped):
    images = shipped.generate("a red circle", n=2, seed=0)
    assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()
    caption = shipped.caption(make_example(0, 5, WorldConfig())["image"])[0]
    assert isinstance(caption, str) and caption.strip()
