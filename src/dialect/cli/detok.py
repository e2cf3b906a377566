"""`dialect detokenize` and `dialect reconstruct`: TA-Tok tokens back to pixels.

dialect detokenize TOKENS.json --decoder ar|diffusion -o out.png
    TOKENS.json is what `dialect tokenize IMAGE --json` prints ({"scale": k, "ids": [...]}),
    or a JSON list of such objects; one output image per entry (a grid when several).
dialect reconstruct IMAGE --scale s --decoder ar|diffusion -o out.png
    image -> TA-Tok ids at scale s -> de-tokenizer -> a side-by-side PNG (input | output).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dialect.core.errors import DialectError
from dialect.core.images import save_grid
from dialect.data.user_image import load_image_tensor
from dialect.detok import DECODERS, ARDTok, DifDTok

DEFAULT_PATHS = {"ar": "runs/tiny/ardtok/model", "diffusion": "runs/tiny/difdtok/model"}


def load_detokenizer(decoder: str, path: str | None) -> ARDTok | DifDTok:
    """The de-tokenizer of kind `decoder` ("ar" | "diffusion") from `path` (None: its tiny run)."""
    if decoder not in DECODERS:
        raise DialectError(f"--decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    return DECODERS[decoder].from_pretrained(path or DEFAULT_PATHS[decoder]).eval()


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decoder", default="ar", choices=sorted(DECODERS), help="de-tokenizer kind (default ar)")
    p.add_argument("--model", default=None, help="de-tokenizer folder (default: runs/tiny/<decoder>/model)")
    p.add_argument("-o", "--out", required=True, help="output PNG")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance (default: the model's)"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="diffusion only: Euler steps (default: the model's)"
    )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "detokenize", help="turn TA-Tok tokens (JSON from `dialect tokenize --json`) into an image"
    )
    p.add_argument("tokens", help="JSON file with {'scale': k, 'ids': [...]} (or a list of them)")
    _common(p)
    p.set_defaults(func=run_detokenize)
    p = sub.add_parser("reconstruct", help="image -> TA-Tok tokens -> de-tokenizer; writes input | output")
    p.add_argument("image", help="image file (png, jpg, ...)")
    p.add_argument("--scale", type=int, default=0, help="TA-Tok scale index (0 = finest)")
    _common(p)
    p.set_defaults(func=run_reconstruct)


def _sampling(args: argparse.Namespace) -> dict:
    kw = {"guidance": args.guidance}
    if args.steps is not None:
        if args.decoder != "diffusion":
            raise DialectError("--steps applies to --decoder diffusion only")
        kw["steps"] = args.steps
    return kw


def _read_tokens(path: str) -> list[tuple[int, list[int]]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DialectError(f"cannot read tokens from {path}: {exc}") from None
    entries = data if isinstance(data, list) else [data]
    out = []
    for e in entries:
        if (
            not isinstance(e, dict)
            or not isinstance(e.get("ids"), list)
            or not isinstance(e.get("scale"), int)
        ):
            raise DialectError(f"{path}: each entry needs an integer 'scale' and a list 'ids'")
        out.append((e["scale"], e["ids"]))
    if not out:
        raise DialectError(f"{path} holds no token entries")
    return out


def run_detokenize(args: argparse.Namespace) -> int:
    kw = _sampling(args)
    model = load_detokenizer(args.decoder, args.model)
    images = []
    for i, (scale, ids) in enumerate(_read_tokens(args.tokens)):
        try:
            ids_t = torch.tensor([ids], dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            raise DialectError(f"{args.tokens}: ids of entry {i} are not integers") from None
        images.append(model.decode_ids(ids_t, scale, seed=args.seed + i, **kw)[0])
    path = save_grid(torch.stack(images), args.out)
    print(f"wrote {path} ({len(images)} image{'s' * (len(images) > 1)}, decoder {args.decoder})")
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    kw = _sampling(args)
    model = load_detokenizer(args.decoder, args.model)
    image = load_image_tensor(args.image, model.condition.tatok.config.teacher.image_size)
    t0 = time.perf_counter()
    out = model.reconstruct(image, args.scale, seed=args.seed, **kw)
    seconds = time.perf_counter() - t0
    path = save_grid(torch.cat([image, out]), args.out, ncols=2)
    n = model.condition.tatok.num_tokens(args.scale)
    print(
        f"wrote {path}: input | {args.decoder} reconstruction from {n} tokens "
        f"(scale {args.scale}), {seconds:.2f} s"
    )
    return 0
