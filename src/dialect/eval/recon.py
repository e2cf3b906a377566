"""Reconstruction through a de-tokenizer, per TA-Tok scale, on fresh ShapeWorld scenes.

image -> TA-Tok ids at scale k -> de-tokenizer (AR-DTok or Dif-DTok) -> image, then:
- `fidelity`: semantic fidelity, the fraction of reconstructions whose graded scene
  (`world.grade.parse_image`) equals the original scene (`scene_equal`: same multiset of
  (shape, colour, size, column, row) objects) -- the question "did the tokens keep the scene?";
- `psnr`, `ssim`: per image on [0, 1] against the original, averaged over images
  (`eval.metrics`, checked against scikit-image);
- `sec_per_image`: wall-clock seconds of tokenize + de-tokenize per image at `batch_size`;
- `recovery`: where fidelity is lost, `world.grade.recovery` of the graded reconstructions: the
  fraction of original objects redrawn with the right shape / colour / size / 3x3 position, of
  images with the right object count, and spurious objects per image.
Every row names the sample count, seed and split. Any model with
`reconstruct(images, scale, seed=...)` and `condition.num_scales` works; `score_reconstructions`
scores any image -> image function (e.g. the pixel VQ alone, the de-tokenizers' upper bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm

from dialect.core.images import to_uint8
from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.eval.metrics import psnr, ssim, to_unit
from dialect.world import WorldConfig
from dialect.world.grade import parse_image, recovery, scene_equal
from dialect.world.scene import Scene

EVAL_SEED = 3_000_017


@torch.no_grad()
def score_reconstructions(
    reconstruct: Callable[[torch.Tensor, int], torch.Tensor],
    world: WorldConfig,
    n: int = 500,
    batch_size: int = 50,
    seed: int = EVAL_SEED,
    split: str = "heldout",
    desc: str = "recon",
    progress: bool = True,
) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """`reconstruct(images, batch_index) -> images` over `n` fresh scenes ->
    ({n, fidelity, psnr, ssim, sec_per_image, recovery}, (originals, reconstructions) of the
    first batch)."""
    ds = ShapeWorldDataset(world, seed=seed, length=n, split=split)
    hits, psnrs, ssims, seconds, first = 0, [], [], 0.0, None
    truths, parsed = [], []
    for b, start in enumerate(tqdm(range(0, n, batch_size), desc=desc, disable=not progress)):
        batch = collate([ds[i] for i in range(start, min(n, start + batch_size))])
        x = batch["image"]
        t0 = time.perf_counter()
        recon = reconstruct(x, b).float()
        seconds += time.perf_counter() - t0
        psnrs.append(psnr(to_unit(recon), to_unit(x)))
        ssims.append(ssim(to_unit(recon), to_unit(x)))
        images = to_uint8(recon)
        for img, meta in zip(images, batch["meta"], strict=True):
            truths.append(Scene.from_dict(meta["scene"]))
            parsed.append(parse_image(img, world))
            hits += scene_equal(parsed[-1], truths[-1])
        if first is None:
            first = (to_uint8(x), images)
    row = {
        "n": n,
        "fidelity": hits / n,
        "psnr": float(torch.cat(psnrs).mean()),
        "ssim": float(torch.cat(ssims).mean()),
        "sec_per_image": seconds / n,
        "recovery": recovery(truths, parsed),
    }
    return row, first


def evaluate_reconstruction(
    model,
    world: WorldConfig,
    n: int = 500,
    scales: list[int] | None = None,
    batch_size: int = 50,
    seed: int = EVAL_SEED,
    split: str = "heldout",
    progress: bool = True,
    **sampling,
) -> tuple[dict, dict]:
    """A de-tokenizer per TA-Tok scale -> ({"scale{k}": {tokens, n, fidelity, psnr, ssim,
    sec_per_image, recovery}}, {"scale{k}": (originals, reconstructions) uint8 (m, H, W, 3)}).
    `sampling` goes to `model.reconstruct`; batch b is sampled with seed `seed + b`."""
    model.eval()
    world = replace(world, size=model.condition.tatok.config.teacher.image_size)
    scales = list(range(model.condition.num_scales)) if scales is None else scales
    results, examples = {}, {}
    for k in scales:
        row, examples[f"scale{k}"] = score_reconstructions(
            lambda x, b, k=k: model.reconstruct(x, k, seed=seed + b, **sampling),
            world, n, batch_size, seed, split, f"scale {k}", progress,
        )  # fmt: skip
        results[f"scale{k}"] = {"tokens": model.condition.tatok.num_tokens(k), **row}
    return results, examples
