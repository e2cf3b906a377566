"""Recipe for pretokenized training scenes (`dialect train ids`, also behind `dialect pretokenize`):
a dataset encoded once by a trained TA-Tok (ids of every scale) and, optionally, a pixel VQ, into a
`dialect.data.tokens` folder that the LM and de-tokenizer recipes read with
`data.source=pretokenized data.path=DIR`.

Not a model: the stage writes `out_dir/` (index.json + shard-*.npz; layout and resume rules in
`dialect.tokenizers.pretokenize`). Why the tiny chain has it: a Dif-DTok training step re-encodes
its images with both frozen tokenizers every time, 57 of its 123 ms (tiny preset, batch 16, bf16
autocast, 2-core CPU: TA-Tok 40 ms, pixel VQ 9 ms, rendering 8 ms), so reading stored ids makes
its steps 1.5x faster (513 s against 788 s for 6,000 steps, one machine, one after the other) and
buys the extra steps that lift its exact redraws (experiments/results/detok_fidelity.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset, transform_for
from dialect.data.shards import WebDatasetStream
from dialect.world import WorldConfig


@dataclass
class IdsRun:
    tatok: str = "runs/tiny/tatok/model"  # trained TA-Tok folder (ids of every scale are stored)
    pixelvq: str = ""  # trained pixel VQ folder (its ids are stored too); "" = TA-Tok ids only
    out_dir: str = "runs/ids"  # the pretokenized folder written (and resumed)
    shard_size: int = 1000  # source samples per shard
    batch_size: int = 32  # images encoded per forward
    device: str = "auto"  # auto | cpu | cuda
    data: DataConfig = field(default_factory=lambda: DataConfig(shuffle=False))
    world: WorldConfig = field(default_factory=WorldConfig)


def build_source(cfg: IdsRun) -> Dataset:
    """The dataset to encode, in source order: map-style, or one unshuffled single-rank pass of
    WebDataset shards."""
    d = cfg.data
    if d.mix or d.source == "pretokenized":
        raise DialectError("pretokenize reads one image source; mix pretokenized folders when training")
    if d.source == "shapeworld" and d.length < 1:
        raise DialectError("pretokenizing ShapeWorld needs a finite data.length (e.g. data.length=10000)")
    if d.source == "webdataset":
        if not d.path:
            raise DialectError("data.source=webdataset needs data.path (a shard pattern)")
        return WebDatasetStream(
            d.path, transform=transform_for(d), strict=d.strict, min_size=d.min_size, rank=0, world_size=1
        )
    return build_dataset(d, cfg.world)


def train(cfg: IdsRun) -> None:
    """Encode (or finish encoding) `cfg.data` into `cfg.out_dir`, reporting what it stored."""
    from dialect.tokenizers.pixelvq import PixelVQ
    from dialect.tokenizers.pretokenize import pretokenize
    from dialect.tokenizers.tatok import TATok
    from dialect.train.recipes.common import require_trained

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    require_trained(cfg.tatok, "TA-Tok", "dialect train tatok --preset tiny", "tatok")
    tatok = TATok.from_pretrained(cfg.tatok).eval().to(device)
    pixelvq = None
    if cfg.pixelvq:
        require_trained(cfg.pixelvq, "pixel VQ", "dialect train pixelvq --preset tiny", "pixelvq")
        pixelvq = PixelVQ.from_pretrained(cfg.pixelvq).eval().to(device)
    source = {"data": asdict(cfg.data), "tatok": cfg.tatok, "pixelvq": cfg.pixelvq}
    if cfg.data.source == "shapeworld":
        source["world"] = asdict(cfg.world)
    index = pretokenize(
        build_source(cfg), cfg.out_dir, tatok, pixelvq, cfg.shard_size, cfg.batch_size, source=source
    )
    stored = sum(s["samples"] for s in index["shards"])
    shards = len(index["shards"])
    print(f"done: {stored} of {index['num_samples']} samples in {shards} shard(s) -> {cfg.out_dir}")
