"""The compiled-decoding flags that `dialect eval` and `dialect serve` share: `--compile` and
`--ahead-of-time` (`Dialect.compile_decoding`)."""

from __future__ import annotations

import argparse


def add_compile_flags(p: argparse.ArgumentParser, first_calls: str) -> None:
    """Add `--compile` (its help ends with `first_calls`: what compiling costs this command) and
    `--ahead-of-time` to a subcommand's parser."""
    p.add_argument(
        "--compile", action="store_true",
        help=f"decode through compiled one-token steps (Dialect.compile_decoding): {first_calls}",
    )  # fmt: skip
    p.add_argument(
        "--ahead-of-time", action="store_true",
        help="--compile, with the steps built ahead of time by AOTInductor: a C++ build per LM and "
        "batch size (~10-30 s) serves every length, and steps run without Python around the kernels",
    )  # fmt: skip


def compile_as_asked(model, args: argparse.Namespace):
    """`model` (a Dialect) with decoding compiled as the flags ask (`--ahead-of-time` implies
    `--compile`)."""
    return model.compile_decoding(args.compile or args.ahead_of_time, ahead_of_time=args.ahead_of_time)
