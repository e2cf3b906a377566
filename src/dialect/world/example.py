"""One ShapeWorld example from (index, seed, split): image, scene, captions, questions and edits.

Example i draws from its own generator, seeded by SeedSequence([seed, split code, i]), so it never
depends on the examples before it: a dataset can read any index in any order, on any worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dialect.core.errors import DialectError
from dialect.world.edits import make_edits
from dialect.world.language import captions, questions
from dialect.world.render import render
from dialect.world.scene import SPLITS, WorldConfig, check_split, sample_scene


def example_rng(index: int, seed: int, split: str, attempt: int = 0) -> np.random.Generator:
    """The generator of example `index` of (`seed`, `split`); attempt > 0 gives independent redraws."""
    check_split(split)
    if index < 0 or seed < 0 or attempt < 0:
        raise DialectError(f"example index and seed must be non-negative, got index={index}, seed={seed}")
    key = [int(seed), SPLITS.index(split), int(index)] + ([int(attempt)] if attempt else [])
    return np.random.default_rng(np.random.SeedSequence(key))


def make_example(
    index: int, seed: int, cfg: WorldConfig, split: str = "train", with_edits: bool = True, attempt: int = 0
) -> dict[str, Any]:
    """Example dict: "index", "split", "image" (uint8 (H, W, 3)), "scene" (Scene), "captions"
    (list[str]), "qa" (list of {"question", "answer", "type"}) and, if with_edits, "edits" (list of
    {"instruction", "type", "target": Scene}; render a target with `render(target, cfg)`).
    with_edits=False skips edit generation (it draws last, so the rest is identical either way).
    attempt > 0 redraws the example independently (used to skip the rare scene that allows no edit)."""
    rng = example_rng(index, seed, split, attempt)
    scene = sample_scene(rng, cfg, split)
    out = {
        "index": index,
        "split": split,
        "image": render(scene, cfg),
        "scene": scene,
        "captions": captions(rng, scene, cfg),
        "qa": questions(rng, scene, cfg, split),
    }
    if with_edits:
        out["edits"] = make_edits(rng, scene, cfg, split)
    return out
