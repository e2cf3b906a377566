"""`dialect pretokenize --tatok DIR --out DIR [--pixelvq DIR] [data.key=value ...]`: encode a
dataset once into sharded TA-Tok ids (every scale) and optional pixel-VQ ids.

The data section is the trainers' `DataConfig` (`data.source=shapeworld data.length=10000`,
`data.source=folder data.path=imgs/`, `data.source=webdataset data.path='shards-{000..009}.tar'`;
`world.*` for ShapeWorld). Sources are read in order, unshuffled. Re-running the same command
resumes: finished shards are skipped. Read the folder back with `dialect.data.tokens`. The same
work as `dialect train ids` (`dialect.train.recipes.ids`), which takes its settings from a preset.
"""

from __future__ import annotations

import argparse


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


def run(args: argparse.Namespace) -> int:
    from dialect.core.config import load_config
    from dialect.train.recipes import ids

    cfg = load_config(ids.IdsRun, [], args.overrides)
    cfg.tatok, cfg.pixelvq, cfg.out_dir, cfg.device = args.tatok, args.pixelvq, args.out, args.device
    cfg.shard_size, cfg.batch_size = args.shard_size, args.batch_size
    ids.train(cfg)
    return 0
