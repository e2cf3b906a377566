"""`dialect tokenize IMAGE [--scale s] [--model PATH] [--json]`: an image in the TA-Tok dialect.

Prints the code ids, their `<I..>` token string and the source word of every code, laid out on
the token grid.
"""

from __future__ import annotations

import argparse
import json

from dialect.data.user_image import load_image_tensor
from dialect.tokenizers.tatok import TATok, token_string

DEFAULT_MODEL = "runs/tiny/tatok/model"


def add_parser(sub) -> None:
    p = sub.add_parser("tokenize", help="turn an image into text-aligned TA-Tok tokens")
    p.add_argument("image", help="image file (png, jpg, ...)")
    p.add_argument("--scale", type=int, default=0, help="TA-Tok scale index (0 = finest)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"TA-Tok folder (default {DEFAULT_MODEL})")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = TATok.from_pretrained(args.model).eval()
    model._check_scale(args.scale)
    image = load_image_tensor(args.image, model.config.teacher.image_size)
    ids = model.encode_ids(image, args.scale)[0]
    side = model.scale_side(args.scale)
    words = model.codebook_words(ids)
    result = {
        "image": args.image,
        "scale": args.scale,
        "grid": [side, side],
        "ids": ids.tolist(),
        "tokens": token_string(ids, args.scale),
        "words": words,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.image}: scale {args.scale}, {len(words)} tokens ({side}x{side} grid)")
    print("ids:   ", " ".join(map(str, result["ids"])))
    print("tokens:", result["tokens"])
    width = max(len(w) for w in words)
    print("words (token grid):")
    for r in range(side):
        print("  " + " ".join(w.ljust(width) for w in words[r * side : (r + 1) * side]))
    return 0
