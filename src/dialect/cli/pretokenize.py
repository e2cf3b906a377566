"""`dialect pretokenize --tatok DIR --out DIR [--pixelvq DIR] [data.key=value ...]`: encode a
dataset once into sharded TA-Tok ids (every scale) and optional pixel-VQ ids.

The data section is the trainers' `DataConfig` (`data.source=shapeworld data.length=10000`,
`data.source=folder data.path=imgs/`, `data.source=webdataset data.path='shards-{000..009}.tar'`;
`world.*` for ShapeWorld). Sources are read in order, unshuffled. Re-running the same command
resumes: finished shards are skipped. Read the folder back with `dialect.data.tokens`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field

import torch

from dialect.core.config import load_config
from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset, transform_for
from dialect.data.shards import WebDatasetStream
from dialect.world import WorldConfig


@dataclass
class PretokenizeData:
    data: DataConfig = field(default_factory=lambda: DataConfig(shuffle=False))
    world: WorldConfig = field(default_factory=WorldConfig)


def add_parser(sub) -> None:
    p = sub.add_parser("pretokenize", help="encode a dataset once into sharded TA-Tok (and pixel-VQ) ids")
    p.add_argument("--tatok", required=True, help="trained TA-Tok folder")
    p.add_argument("--pixelvq", default="", help="trained pixel VQ folder (also store its ids)")
    p.add_argument("--out", required=True, help="output folder (index.json + shard-*.npz)")
    p.add_argument("--shard-size", type=int, default=1000, help="source samples per shard")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. data.source=shapeworld data.length=64"
    )
    p.set_defaults(func=run)


def build_source(cfg: PretokenizeData):
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


def run(args: argparse.Namespace) -> int:
    from dialect.tokenizers.pixelvq import PixelVQ
    from dialect.tokenizers.pretokenize import pretokenize
    from dialect.tokenizers.tatok import TATok
    from dialect.train.recipes.common import require_trained

    cfg = load_config(PretokenizeData, [], args.overrides)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    require_trained(args.tatok, "TA-Tok", "dialect train tatok --preset tiny", "--tatok")
    tatok = TATok.from_pretrained(args.tatok).eval().to(device)
    pixelvq = None
    if args.pixelvq:
        require_trained(args.pixelvq, "pixel VQ", "dialect train pixelvq --preset tiny", "--pixelvq")
        pixelvq = PixelVQ.from_pretrained(args.pixelvq).eval().to(device)
    source = {"data": asdict(cfg.data), "tatok": args.tatok, "pixelvq": args.pixelvq}
    if cfg.data.source == "shapeworld":
        source["world"] = asdict(cfg.world)
    index = pretokenize(
        build_source(cfg), args.out, tatok, pixelvq, args.shard_size, args.batch_size, source=source
    )
    stored = sum(s["samples"] for s in index["shards"])
    print(
        f"done: {stored} of {index['num_samples']} samples in {len(index['shards'])} shard(s) -> {args.out}"
    )
    return 0
