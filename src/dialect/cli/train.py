"""`dialect train MODEL [--preset NAME] [--config FILE ...] [key=value ...]`.

Config precedence: the recipe's dataclass defaults <- the preset <- each --config file <- the
overrides. `--print-config` shows the resolved config and exits without training.
"""

from __future__ import annotations

import argparse

import yaml

from dialect.core.config import load_config, to_dict
from dialect.train.recipes import RECIPES, preset_path


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (runs unchanged under torchrun)")
    p.add_argument("model", choices=sorted(RECIPES), help="what to train")
    p.add_argument("--preset", default=None, help="named preset shipped with dialect (e.g. tiny)")
    p.add_argument("--config", action="append", default=[], help="YAML config file (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.steps=200 data.size=32")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
