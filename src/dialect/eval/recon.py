"""Reconstruction through a de-tokenizer, per TA-Tok scale, on fresh ShapeWorld scenes.

image -> TA-Tok ids at scale k -> de-tokenizer (AR-DTok or Dif-DTok) -> image, then:
- `fidelity`: semantic fidelity, the fraction of reconstructions whose graded scene
  (`world.grade.parse_image`) equals the original scene (`scene_equal`: same multiset of
  (shape, colour, size, column, row) objects) -- the question "did the tokens keep the scene?";
- `psnr`, `ssim`: per image on [0, 1] against the original, averaged over images
  (`eval.metrics`, checked against scikit-image);
- `sec_per_image`: wall-clock seconds of tokenize + de-tokenize per image at `batch_size`.
Every row names the sample count, seed and split. Any model with
`reconstruct(images, scale, seed=...)` and `condition.num_scales` works.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from tqdm import tqdm

from dialect.core.images import to_uint8
from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.eval.metrics import psnr, ssim, to_unit
from dialect.world import WorldConfig
from dialect.world.grade import parse_image, scene_equal
from dialect.world.scene import Scene

EVAL_SEED = 3_000_017


@torch.no_grad()
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
    """-> ({"scale{k}": {n, fidelity, psnr, ssim, sec_per_image}}, {"scale{k}": (originals,
    reconstructions) uint8 (m, H, W, 3) for the first batch}). `sampling` goes to `reconstruct`."""
    model.eval()
    world = replace(world, size=model.condition.tatok.config.teacher.image_size)
    ds = ShapeWorldDataset(world, seed=seed, length=n, split=split)
    scales = list(range(model.condition.num_scales)) if scales is None else scales
    results, examples = {}, {}
    for k in scales:
        hits, psnrs, ssims, seconds = 0, [], [], 0.0
        for b, start in enumerate(tqdm(range(0, n, batch_size), desc=f"scale {k}", disable=not progress)):
            batch = collate([ds[i] for i in range(start, min(n, start + batch_size))])
            x = batch["image"]
            t0 = time.perf_counter()
            recon = model.reconstruct(x, k, seed=seed + b, **sampling).float()
            seconds += time.perf_counter() - t0
            psnrs.append(psnr(to_unit(recon), to_unit(x)))
            ssims.append(ssim(to_unit(recon), to_unit(x)))
            images = to_uint8(recon)
            for img, meta in zip(images, batch["meta"], strict=True):
                hits += scene_equal(parse_image(img, world), Scene.from_dict(meta["scene"]))
            if b == 0:
                examples[f"scale{k}"] = (to_uint8(x), images)
        results[f"scale{k}"] = {
            "tokens": model.condition.tatok.num_tokens(k),
            "n": n,
            "fidelity": hits / n,
            "psnr": float(torch.cat(psnrs).mean()),
            "ssim": float(torch.cat(ssims).mean()),
            "sec_per_image": seconds / n,
        }
    return results, examples
