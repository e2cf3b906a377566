"""Which object each patch of an image shows: per-patch labels for a grounded (dense) objective.

A scene rendered at `size` pixels is cut into a grid x grid patch grid (the teacher ViT's). A patch
belongs to the object that owns the largest share of its pixels, if that share is at least
`min_cover`, else to the background; an object owns the pixels it covers (coverage >= 0.5 at the
pixel centre), later objects over earlier ones, as the renderer paints them. The label is the
object's phrase "size color shape" (e.g. "large red circle") as an index into `PHRASES`, whose
last entry is "background".
"""

from __future__ import annotations

import numpy as np

from dialect.world.render import coverage, object_box
from dialect.world.scene import PALETTE, SHAPES, SIZES, Scene, WorldConfig

PHRASES: tuple[str, ...] = tuple(f"{s} {c} {h}" for s in SIZES for c in PALETTE for h in SHAPES) + (
    "background",
)
BACKGROUND = len(PHRASES) - 1
_INDEX = {p: i for i, p in enumerate(PHRASES)}


def patch_labels(scene: Scene, cfg: WorldConfig, grid: int, min_cover: float = 0.25) -> np.ndarray:
    """-> int64 (grid, grid) indices into PHRASES, row-major like the ViT's patch grid."""
    n = cfg.size
    if n % grid:
        raise ValueError(f"image size {n} is not divisible by the patch grid {grid}")
    owner = np.full((n, n), -1, dtype=np.int64)
    for k, obj in enumerate(scene.objects):
        cx, cy, r = obj.x * n, obj.y * n, cfg.radius(obj.size) * n
        y0, y1, x0, x1 = box = object_box(cx, cy, r, n, n)
        if y1 > y0 and x1 > x0:
            covered = coverage(obj.shape, cx, cy, r, box) >= 0.5
            owner[y0:y1, x0:x1][covered] = k
    p = n // grid
    blocks = owner.reshape(grid, p, grid, p).transpose(0, 2, 1, 3).reshape(grid, grid, p * p)
    labels = np.full((grid, grid), BACKGROUND, dtype=np.int64)
    if not scene.objects:
        return labels
    shares = (blocks[..., None] == np.arange(len(scene.objects))).mean(-2)  # (grid, grid, objects)
    best = shares.argmax(-1)
    phrase = np.array([_INDEX[f"{o.size} {o.color} {o.shape}"] for o in scene.objects])
    covered = shares.max(-1) >= min_cover
    labels[covered] = phrase[best[covered]]
    return labels
