"""`dialect train MODEL [--preset NAME] [--config FILE ...] [key=value ...]`, and
`dialect train all --preset NAME [--root DIR] [--stages a,b,...] [STAGE.key=value ...]`.

Config precedence: the recipe's dataclass defaults <- the preset <- each --config file <- the
overrides. `--print-config` shows the resolved config and exits without training.
"""

from __future__ import annotations

import argparse

import yaml

from dialect.core.config import load_config, to_dict
from dialect.core.errors import DialectError
from dialect.train.all import DEFAULT_STAGES, train_all
from dialect.train.recipes import RECIPES, preset_path


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (runs unchanged under torchrun)")
    p.add_argument("model", choices=[*sorted(RECIPES), "all"], help="what to train ('all': every stage)")
    p.add_argument("--preset", default=None, help="named preset shipped with dialect (e.g. tiny)")
    p.add_argument("--config", action="append", default=[], help="YAML config file (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--root", default=None, help="all: run folder of every stage (default runs/PRESET)")
    p.add_argument(
        "--stages", default=None, help=f"all: comma-separated stages (default {','.join(DEFAULT_STAGES)})"
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.steps=200 data.size=32")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model == "all":
        return run_all(args)
    recipe = RECIPES[args.model]
    files = ([preset_path(args.model, args.preset)] if args.preset else []) + list(args.config)
    cfg = load_config(recipe.config_class, files, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    result = recipe.train(cfg)
    if result:
        shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in result.items()}
        print(f"done: {shown} -> {cfg.train.out_dir}/model")
    return 0


def run_all(args: argparse.Namespace) -> int:
    """`train all`: overrides are `STAGE.key=value` (e.g. `lm.train.steps=100`)."""
    if not args.preset:
        raise DialectError("train all needs --preset (e.g. --preset tiny)")
    if args.config or args.print_config:
        raise DialectError(
            "train all takes --preset and STAGE.key=value overrides, not --config/--print-config"
        )
    per_stage: dict[str, list[str]] = {}
    for item in args.overrides:
        stage, _, rest = item.partition(".")
        if not rest or "=" not in rest:
            raise DialectError(f"train all overrides are STAGE.key=value, got '{item}'")
        per_stage.setdefault(stage, []).append(rest)
    stages = args.stages.split(",") if args.stages else DEFAULT_STAGES
    bad = set(per_stage) - set(stages)
    if bad:
        raise DialectError(f"overrides for stages not being trained: {', '.join(sorted(bad))}")
    train_all(args.preset, args.root, stages, per_stage)
    return 0
