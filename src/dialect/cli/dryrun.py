"""`dialect dryrun PRESET [key=value ...]`: size a paper-scale run without weights.

PRESET is a dry-run preset shipped with dialect (`gpu/tatok`, `gpu/lm`: `configs/gpu/*.yaml`) or a
YAML file. The models are built on the meta device; the report lists parameters per part, memory
per GPU and tokens per step (see `dialect.train.dryrun`).
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from dialect.core.config import load_config
from dialect.core.errors import DialectError


def add_parser(sub) -> None:
    p = sub.add_parser("dryrun", help="size a paper-scale run on the meta device (no weights, no GPU)")
    p.add_argument("preset", help="gpu/tatok, gpu/lm, or a dry-run YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. step.micro_batch=16")
    p.set_defaults(func=run)


def preset_file(name: str) -> Path:
    """A shipped dry-run preset (`gpu/tatok`) or an existing YAML file; else a DialectError."""
    if Path(name).is_file():
        return Path(name)
    folder = Path(str(resources.files("dialect") / "configs"))
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.glob("gpu/*.yaml"))
        raise DialectError(f"no dry-run preset or file '{name}'; shipped: {', '.join(known)}")
    return path


def run(args: argparse.Namespace) -> int:
    from dialect.train.dryrun import DryRunConfig, dry_run

    cfg = load_config(DryRunConfig, [preset_file(args.preset)], args.overrides)
    print(dry_run(cfg).format(), end="")
    return 0
