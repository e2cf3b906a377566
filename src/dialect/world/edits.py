"""Edit triples: (source scene, instruction, target scene) for recolor / remove / add / move / resize.

Every instruction names its object by a description that picks out exactly one object of the source
scene, and the target differs from the source only by the edit, so the target is fully determined
up to continuous position inside a bucket (scene equality compares buckets). Moves go to a bucket
column or row: "move the X to the left" puts the X in the left column, same y. In train/val no
target (and no instruction) contains a held-out (color, shape) pair. An edit that cannot be made
(no uniquely named object, no free space, scene already full) is skipped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from dialect.world.language import noun_phrase, pick, reference, where_phrase, with_article
from dialect.world.scene import SIZES, Obj, Scene, WorldConfig, allowed_pairs, fits, heldout_set, place

EDIT_TYPES = ("recolor", "remove", "add", "move", "resize")
MOVES = {  # direction -> (axis, bucket index, phrasings)
    "left": ("x", 0, ("move {} to the left", "move {} left", "put {} on the left")),
    "right": ("x", 2, ("move {} to the right", "move {} right", "put {} on the right")),
    "up": ("y", 0, ("move {} up", "move {} to the top", "put {} at the top")),
    "down": ("y", 2, ("move {} down", "move {} to the bottom", "put {} at the bottom")),
}


def _named(rng: np.random.Generator, scene: Scene) -> list[tuple[int, str]]:
    """(index, 'the red ball') for every uniquely describable object, in random order."""
    out = []
    for i in rng.permutation(len(scene.objects)):
        obj = scene.objects[int(i)]
        attrs = reference(obj, scene)
        if attrs:
            out.append((int(i), "the " + noun_phrase(rng, obj, attrs)))
    return out


def _swap(scene: Scene, i: int, new: Obj | None) -> Scene:
    objs = list(scene.objects)
    if new is None:
        del objs[i]
    else:
        objs[i] = new
    return scene.with_objects(objs)


def _recolor(
    rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str
) -> tuple[str, Scene] | None:
    held = heldout_set(cfg) if split != "heldout" else set()
    for i, name in _named(rng, scene):
        obj = scene.objects[i]
        colors = [c for c in cfg.colors if c != obj.color and (c, obj.shape) not in held]
        if colors:
            c = pick(rng, colors)
            text = pick(rng, ("make {} {}", "color {} {}", "turn {} {}", "paint {} {}")).format(name, c)
            return text, _swap(scene, i, replace(obj, color=c))
    return None


def _remove(rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str) -> tuple[str, Scene] | None:
    if len(scene.objects) <= cfg.min_objects:
        return None
    for i, name in _named(rng, scene):
        text = pick(rng, ("remove {}", "delete {}", "take away {}", "get rid of {}")).format(name)
        return text, _swap(scene, i, None)
    return None


def _add(rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str) -> tuple[str, Scene] | None:
    if len(scene.objects) >= cfg.max_objects:
        return None
    pairs = allowed_pairs(cfg, split)
    color, shape = pairs[int(rng.integers(len(pairs)))]
    obj = place(rng, shape, color, SIZES[int(rng.integers(2))], scene.objects, cfg)
    if obj is None:
        return None
    text = f"add {with_article(noun_phrase(rng, obj))} {where_phrase(obj.column, obj.row)}"
    return text, scene.with_objects([*scene.objects, obj])


def _move(rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str) -> tuple[str, Scene] | None:
    for i, name in _named(rng, scene):
        obj = scene.objects[i]
        others = [o for k, o in enumerate(scene.objects) if k != i]
        for d in rng.permutation(list(MOVES)):
            axis, bucket, phrasings = MOVES[str(d)]
            now = int(min(getattr(obj, axis) * 3, 2))
            if now == bucket:
                continue
            span = (bucket / 3, (bucket + 1) / 3)
            xr, yr = (span, (obj.y, obj.y)) if axis == "x" else ((obj.x, obj.x), span)
            new = place(rng, obj.shape, obj.color, obj.size, others, cfg, xr, yr)
            if new is not None:
                return pick(rng, phrasings).format(name), _swap(scene, i, new)
    return None


def _resize(rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str) -> tuple[str, Scene] | None:
    for i, name in _named(rng, scene):
        obj = scene.objects[i]
        others = [o for k, o in enumerate(scene.objects) if k != i]
        if obj.size == "small":
            new, phrasings = replace(obj, size="large"), ("make {} bigger", "make {} larger", "enlarge {}")
        else:
            new, phrasings = replace(obj, size="small"), ("make {} smaller", "shrink {}", "make {} tinier")
        if fits(new, others, cfg):
            return pick(rng, phrasings).format(name), _swap(scene, i, new)
    return None


_MAKERS = {"recolor": _recolor, "remove": _remove, "add": _add, "move": _move, "resize": _resize}


def make_edits(
    rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str = "train"
) -> list[dict[str, Any]]:
    """At most one edit per type in EDIT_TYPES: {"instruction": str, "type": str, "target": Scene}."""
    out = []
    for etype in EDIT_TYPES:
        made = _MAKERS[etype](rng, scene, cfg, split)
        if made:
            out.append({"instruction": made[0], "type": etype, "target": made[1]})
    return out


def make_variation(rng: np.random.Generator, scene: Scene, cfg: WorldConfig) -> Scene:
    """The same scene re-composed: every object keeps its shape, colour, size and 3x3 bucket (so the
    result is `scene_equal` to the input) but gets a fresh position inside its bucket; an object
    that finds no free spot keeps its old position."""
    m = cfg.bucket_margin
    placed: list[Obj] = []
    for k, obj in enumerate(scene.objects):
        col, row = int(min(obj.x * 3, 2)), int(min(obj.y * 3, 2))
        others = placed + list(scene.objects[k + 1 :])
        new = place(
            rng, obj.shape, obj.color, obj.size, others, cfg,
            (col / 3 + m, (col + 1) / 3 - m), (row / 3 + m, (row + 1) / 3 - m),
        )  # fmt: skip
        placed.append(new if new is not None else obj)
    return scene.with_objects(placed)
