"""`dialect caption|ask|generate|edit|variation`: the unified model from the command line.

dialect caption IMAGE [IMAGE ...]
dialect ask IMAGE "what color is the circle?"
dialect generate "a red circle left of a blue square" -o out.png [--n 4 --scale 0 --decoder ar --seed 0]
dialect edit IMAGE "make the circle green" -o out.png
dialect variation IMAGE -o out.png

Without --model, the model shipped inside the package is used, so these work right after install.
Several images from one call are written as one grid PNG (and, with --each, one PNG per image).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dialect.core.images import save_grid


def _model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="Dialect model folder (default: the shipped model)")


def _image_out(p: argparse.ArgumentParser, n: bool = False) -> None:
    p.add_argument("-o", "--out", required=True, help="output PNG (a grid when several images)")
    p.add_argument("--each", action="store_true", help="also write OUT_0.png, OUT_1.png, ...")
    p.add_argument("--scale", type=int, default=0, help="TA-Tok scale of the image tokens (0 = finest)")
    p.add_argument(
        "--decoder", default=None,
        help="de-tokenizer: ar | diffusion (default: diffusion when the model ships it, else ar)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--temperature", type=float, default=None, help="LM temperature (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="LM top-k (default 1200)")
    p.add_argument("--top-p", type=float, default=None, help="LM top-p (default 0.95)")
    p.add_argument("--guidance", type=float, default=None, help="de-tokenizer guidance (default: its own)")
    if n:
        p.add_argument("--n", type=int, default=1, help="images per prompt (default 1)")
    p.add_argument(
        "--cfg-scale", type=float, default=None,
        help="LM classifier-free guidance, on the prompt (generate) or, for edit and variation, on the "
        "instruction (on the input image for a model trained to null images only); default 1 = off, the "
        "paper's sampling; needs a model trained with that dropout (model.tasks.t2i_drop; for edits "
        "ti2i_text_drop or ti2i_image_drop > 0)",
    )  # fmt: skip


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help="describe images with the unified model")
    p.add_argument("images", nargs="+", help="image files")
    _model(p)
    p.set_defaults(func=run_caption)
    p = sub.add_parser("ask", help="answer a question about an image")
    p.add_argument("image", help="image file")
    p.add_argument("question", help="the question, quoted")
    p.add_argument(
        "--explain", action="store_true",
        help="print the whole reply: a model trained to describe, then answer (model.tasks.vqa_reason) "
        "writes the scene out before its answer",
    )  # fmt: skip
    _model(p)
    p.set_defaults(func=run_ask)
    p = sub.add_parser("generate", help="text -> image(s)")
    p.add_argument("prompt", help="what to draw, quoted")
    _model(p)
    _image_out(p, n=True)
    p.set_defaults(func=run_generate)
    p = sub.add_parser("edit", help="image + instruction -> edited image")
    p.add_argument("image", help="image file")
    p.add_argument("instruction", help="the edit, quoted (e.g. 'make the circle blue')")
    _model(p)
    _image_out(p)
    p.set_defaults(func=run_edit)
    p = sub.add_parser("variation", help="image -> a variation of it (same objects, new layout)")
    p.add_argument("image", help="image file")
    _model(p)
    _image_out(p)
    p.set_defaults(func=run_variation)


def _load(args: argparse.Namespace):
    from dialect.unified.pipeline import Dialect

    return Dialect.from_pretrained(args.model)


def _sampling(args: argparse.Namespace) -> dict:
    kw = {"scale": args.scale, "decoder": args.decoder, "seed": args.seed}
    kw.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, cfg_scale=args.cfg_scale)
    if args.guidance is not None:
        kw["guidance"] = args.guidance
    return kw


def _write(images, args: argparse.Namespace, seconds: float, what: str) -> int:
    out = save_grid(images, args.out, ncols=min(len(images), 8))
    if args.each:
        stem = Path(args.out).with_suffix("")
        for i, img in enumerate(images):
            save_grid(img[None], f"{stem}_{i}.png")
    print(f"{what}: {len(images)} image(s) in {seconds:.1f}s -> {out}")
    return 0


def run_caption(args: argparse.Namespace) -> int:
    d = _load(args)
    for path, text in zip(args.images, d.caption(args.images), strict=True):
        print(f"{path}: {text}" if len(args.images) > 1 else text)
    return 0


def run_ask(args: argparse.Namespace) -> int:
    print(_load(args).ask(args.image, args.question, explain=args.explain)[0])
    return 0


def run_generate(args: argparse.Namespace) -> int:
    d = _load(args)
    t0 = time.perf_counter()
    images = d.generate(args.prompt, n=args.n, **_sampling(args))
    return _write(images, args, time.perf_counter() - t0, "generated")


def run_edit(args: argparse.Namespace) -> int:
    d = _load(args)
    t0 = time.perf_counter()
    images = d.edit(args.image, args.instruction, **_sampling(args))
    return _write(images, args, time.perf_counter() - t0, "edited")


def run_variation(args: argparse.Namespace) -> int:
    d = _load(args)
    t0 = time.perf_counter()
    images = d.variation(args.image, **_sampling(args))
    return _write(images, args, time.perf_counter() - t0, "variation")
