"""TA-Tok evaluation on fresh ShapeWorld scenes, per scale.

For each scale index k:
- `cosine`: mean cosine similarity between the decoded features and the teacher's (layer-normed)
  target features, over every grid cell of every image;
- `usage`: distinct codes seen over the whole eval set / K; `perplexity`: 2^entropy (bits) of the
  eval-set code histogram (the project's metric conventions);
- `probe_shape`, `probe_color`: linear-probe accuracy on the pooled decoded features of
  single-object scenes (75% fit / 25% test), i.e. whether the tokens keep what the object is.
  Pooling: mean and max over the grid cells, concatenated. An object covers 1-4 of the 64 cells,
  so the mean alone dilutes it with background (on the tiny teacher's own features, measured:
  shape probe 0.45 on the mean, 0.79 on the max).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from tqdm import tqdm

from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.eval.probe import linear_probe
from dialect.quant.usage import CodeUsage
from dialect.tokenizers.tatok import TATok
from dialect.world import WorldConfig

EVAL_SEED = 2_000_003


def _batches(ds: ShapeWorldDataset, batch_size: int):
    for start in range(0, len(ds), batch_size):
        yield collate([ds[i] for i in range(start, min(len(ds), start + batch_size))])


@torch.no_grad()
def evaluate_tatok(model: TATok, world: WorldConfig, n: int = 2000, batch_size: int = 100,
                   seed: int = EVAL_SEED, split: str = "train", progress: bool = True) -> dict:  # fmt: skip
    """-> {"scale{k}": {tokens, cosine, usage, perplexity, probe_shape, probe_color}}."""
    model.eval()
    world = replace(world, size=model.config.teacher.image_size)
    scenes = ShapeWorldDataset(world, seed=seed, length=n, split=split)
    singles = ShapeWorldDataset(
        replace(world, min_objects=1, max_objects=1), seed=seed + 1, length=n, split=split
    )
    shapes, colors = world.shapes, world.colors
    results = {}
    for k in range(model.config.num_scales):
        usage = CodeUsage(model.config.vq.num_codes)
        cos_sum, cells = 0.0, 0
        for batch in tqdm(_batches(scenes, batch_size), desc=f"scale {k}", disable=not progress, leave=False):
            target = model.teacher_features(batch["image"])
            z_q, ids, _ = model.encode(batch["image"], k)
            pred = model.decode(z_q, k).float()
            cos_sum += float(torch.nn.functional.cosine_similarity(pred, target, dim=-1).sum())
            cells += target.shape[0] * target.shape[1] * target.shape[2]
            usage.update(ids)
        feats, y_shape, y_color = [], [], []
        for batch in _batches(singles, batch_size):
            decoded = model.decode_ids(model.encode_ids(batch["image"], k), k).float()
            feats.append(torch.cat([decoded.mean(dim=(1, 2)), decoded.amax(dim=(1, 2))], dim=-1))
            objs = [m["scene"]["objects"][0] for m in batch["meta"]]
            y_shape += [shapes.index(o["shape"]) for o in objs]
            y_color += [colors.index(o["color"]) for o in objs]
        x = torch.cat(feats)
        cut = int(0.75 * len(x))
        ys, yc = torch.tensor(y_shape), torch.tensor(y_color)
        stats = usage.compute()
        results[f"scale{k}"] = {
            "tokens": model.num_tokens(k),
            "cosine": cos_sum / cells,
            "usage": stats["usage"],
            "perplexity": stats["perplexity"],
            "probe_shape": linear_probe(x[:cut], ys[:cut], x[cut:], ys[cut:]),
            "probe_color": linear_probe(x[:cut], yc[:cut], x[cut:], yc[cut:]),
        }
    return results
