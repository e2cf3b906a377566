"""collate: Skipped entries are dropped and listed; SkipCounter aggregates and summarises."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.data.sample import SkipCounter, Skipped, collate, skip_or_raise


def _sample(i: int, text: str | None = "t", size: int = 4):
    return {"image": torch.full((3, size, size), i / 10), "text": text, "meta": {"i": i}}


def test_collate_drops_and_lists_skipped():
    batch = collate([_sample(0), Skipped("a.jpg", "truncated image"), _sample(1, text=None)])
    assert batch["image"].shape == (2, 3, 4, 4)
    assert batch["text"] == ["t", ""]
    assert batch["meta"] == [{"i": 0}, {"i": 1}]
    assert batch["skipped"] == [("a.jpg", "truncated image")]
    assert batch["num_samples"] == 3


def test_all_skipped_gives_an_empty_batch():
    batch = collate([Skipped("a.png", "not an image"), Skipped("b.png", "too small (1x1)")])
    assert batch["image"].shape[0] == 0
    assert batch["text"] == [] and batch["meta"] == []
    assert [p for p, _ in batch["skipped"]] == ["a.png", "b.png"]


def test_extra_keys_stacked_or_listed():
    samples = [dict(_sample(i), target=torch.zeros(3, 4, 4), answer=str(i)) for i in range(2)]
    batch = collate(samples)
    assert batch["target"].shape == (2, 3, 4, 4)
    assert batch["answer"] == ["0", "1"]


def test_samples_without_images_give_a_batch_without_one():
    ids = [{"tatok_s0": torch.full((4,), i), "text": "t", "meta": {"i": i}} for i in range(3)]
    batch = collate([*ids[:2], Skipped("x", "gone"), ids[2]])
    assert "image" not in batch and batch["tatok_s0"].shape == (3, 4)
    assert batch["meta"] == [{"i": 0}, {"i": 1}, {"i": 2}] and batch["num_samples"] == 4
    with pytest.raises(DialectError, match="with and without an image"):
        collate([ids[0], _sample(0)])


def test_mismatched_shapes_are_a_clear_error():
    with pytest.raises(DialectError, match="different shapes"):
        collate([_sample(0, size=4), _sample(1, size=5)])


def test_skip_or_raise():
    assert skip_or_raise("x.png", "not an image", strict=False) == Skipped("x.png", "not an image")
    with pytest.raises(DialectError, match=r"x\.png: not an image"):
        skip_or_raise("x.png", "not an image", strict=True)


def test_skip_counter_summary_and_dedup(caplog):
    counter = SkipCounter()
    assert counter.summary() == "skipped 0 files"
    batch = collate([Skipped("a.jpg", "truncated image"), Skipped("b.png", "not an image"), _sample(0)])
    with caplog.at_level("WARNING", logger="dialect.data"):
        assert counter.update(batch) == 2
        assert counter.update([("c.png", "too small (1x1)"), ("a.jpg", "truncated image")]) == 1
    assert len(counter) == 3 and counter.events == 4
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 3  # one warning per file
    assert counter.summary() == (
        "skipped 3 files: a.jpg (truncated image), b.png (not an image), c.png (too small (1x1))"
    )
    short = SkipCounter(max_listed=1)
    short.load_state_dict(counter.state_dict())
    assert short.summary() == "skipped 3 files: a.jpg (truncated image) and 2 more"
