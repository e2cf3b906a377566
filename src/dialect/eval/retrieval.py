"""Zero-shot image -> caption retrieval of a contrastive encoder on fresh ShapeWorld scenes.

R@1 over a batch of `n` scenes (the issue's protocol: n = 256): each image ranks the n captions
(one per scene, drawn deterministically from the scene's caption list); a hit is its own caption
or a caption with identical text. Scenes come from an evaluation seed that training never uses.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.encoders.contrastive import ContrastiveEncoder
from dialect.world import WorldConfig

EVAL_SEED = 1_000_003  # disjoint from training seeds by convention (training uses small seeds)


@torch.no_grad()
def retrieval_r1(model: ContrastiveEncoder, world: WorldConfig, n: int = 256, split: str = "train",
                 seed: int = EVAL_SEED, batches: int = 4) -> float:  # fmt: skip
    """Mean R@1 over `batches` independent batches of `n` scenes each."""
    model.eval()
    world = replace(world, size=model.config.vision.image_size)
    ds = ShapeWorldDataset(world, seed=seed, length=n * batches, split=split)
    scores = []
    for b in range(batches):
        batch = collate([ds[i] for i in range(b * n, (b + 1) * n)])
        scores.append(model.retrieval_r1(batch["image"], batch["text"]))
    return sum(scores) / len(scores)
