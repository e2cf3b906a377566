"""ShapeWorldDataset: sample layout, ranges, determinism, tasks, batching."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.data import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.world import Scene, WorldConfig, make_example, scene_equal


def test_caption_sample_layout_and_range():
    ds = ShapeWorldDataset(WorldConfig(), seed=0, length=50)
    assert len(ds) == 50
    s = ds[3]
    img = s["image"]
    assert img.shape == (3, 64, 64) and img.dtype == torch.float32
    assert -1.0 <= img.min() < 0.0 and img.max() == 1.0  # white background maps to exactly 1
    assert s["text"] in s["meta"]["captions"]
    assert s["meta"]["index"] == 3 and s["meta"]["qa"]
    ex = make_example(3, 0, WorldConfig(), with_edits=False)
    assert Scene.from_dict(s["meta"]["scene"]) == ex["scene"]
    want = torch.from_numpy(ex["image"]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(img, want)


def test_deterministic_and_varied():
    a, b = ShapeWorldDataset(seed=1), ShapeWorldDataset(seed=1)
    for i in (0, 5, 123456):
        assert torch.equal(a[i]["image"], b[i]["image"]) and a[i]["text"] == b[i]["text"]
    texts = {a[i]["text"] for i in range(40)}
    assert len(texts) > 35
    assert not torch.equal(a[0]["image"], ShapeWorldDataset(seed=2)[0]["image"])
    assert not torch.equal(a[0]["image"], ShapeWorldDataset(seed=1, split="heldout")[0]["image"])


def test_qa_and_edit_tasks():
    qa = ShapeWorldDataset(seed=0, task="qa")[4]
    k = qa["meta"]["qa_index"]
    assert qa["text"] == qa["meta"]["qa"][k]["question"] and qa["answer"] == qa["meta"]["qa"][k]["answer"]
    cfg = WorldConfig(size=32)
    ed = ShapeWorldDataset(cfg, seed=0, task="edit")
    for i in range(10):
        s = ed[i]
        assert s["image"].shape == s["target"].shape == (3, 32, 32)
        assert s["text"] == s["meta"]["edit"]["instruction"]
        target = Scene.from_dict(s["meta"]["edit"]["target"])
        assert not scene_equal(target, Scene.from_dict(s["meta"]["scene"]))
        assert not torch.equal(s["image"], s["target"])


def test_batches_with_the_shared_collate():
    ds = ShapeWorldDataset(seed=0, length=8, task="edit")
    batch = collate([ds[i] for i in range(4)])
    assert batch["image"].shape == batch["target"].shape == (4, 3, 64, 64)
    assert len(batch["text"]) == 4 and len(batch["meta"]) == 4


def test_bad_arguments():
    with pytest.raises(DialectError, match="task"):
        ShapeWorldDataset(task="segment")
    with pytest.raises(DialectError, match="split"):
        ShapeWorldDataset(split="test")
    with pytest.raises(DialectError):
        ShapeWorldDataset(WorldConfig(shapes=["blob"]))
    with pytest.raises(IndexError):
        ShapeWorldDataset(length=3)[3]
