"""Entry point of the `dialect` command.

Bad user input (DialectError) prints one line `dialect: error: ...` to stderr and exits with 2;
Ctrl-C exits with 130. Neither shows a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

import dialect
from dialect.core.errors import DialectError


def build_parser() -> argparse.ArgumentParser:
    from dialect.cli import chat, detok, dryrun, eval, pretokenize, serve, tokenize, train, world

    parser = argparse.ArgumentParser(prog="dialect", description=dialect.__doc__.strip().splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dialect {dialect.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    world.add_parser(sub)
    train.add_parser(sub)
    dryrun.add_parser(sub)
    tokenize.add_parser(sub)
    pretokenize.add_parser(sub)
    detok.add_parser(sub)
    chat.add_parser(sub)
    eval.add_parser(sub)
    serve.add_parser(sub)
    return parser


def _one_line(exc: DialectError) -> str:
    """The user-facing sentence; a DataLoader worker re-raises it wrapped in its traceback text."""
    text = str(exc).strip()
    if text.startswith("Caught "):
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: models come from local paths
    parser = build_parser()
    # key=value overrides may come after options too (`train x --preset tiny a=1 --print-config b=2`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except DialectError as exc:
        print(f"dialect: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dialect: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
