"""`dialect eval BENCHMARK --model PATH [--n N] [--seed S] [--split SPLIT] --out DIR`.

Benchmarks (ShapeWorld, graded by program; see `dialect.eval`):
    vqa       VQA-mini: exact-match accuracy per question type          (n = scenes)
    caption   caption attribute F1                                      (n = scenes)
    geneval   GenEval-mini: six categories, 4 images per prompt         (n = prompts per category)
    edit      Edit-mini: edited scene == target scene, per edit type    (n = edits)
    recon     TA-Tok -> de-tokenizer reconstruction fidelity per scale  (n = scenes)
    fid       FID / KID of text-to-image samples vs renders of the same scenes (n = images);
              needs --inception-weights PATH (a local TorchScript FID Inception; no download)
`--objects K` (vqa, caption) keeps scenes of exactly K objects. `--oracle` (geneval, edit) runs no
LM: each image is a scene meeting the prompt (or the edit's target) rendered, tokenized by TA-Tok
and painted back by the de-tokenizer, the score a perfect LM would get with this tokenizer and
de-tokenizer.
Writes DIR/results.json, DIR/results.md (table with 95% intervals) and, for image benchmarks,
DIR/pass.png / DIR/fail.png sample grids. Without --model the shipped model is evaluated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dialect.cli.compiled import add_compile_flags, compile_as_asked
from dialect.core.errors import DialectError
from dialect.core.images import save_grid
from dialect.eval.stats import proportion
from dialect.world import WorldConfig

BENCHMARKS = ("vqa", "caption", "geneval", "edit", "recon", "fid")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="run a ShapeWorld benchmark on a model")
    p.add_argument("benchmark", choices=BENCHMARKS)
    p.add_argument("--model", default=None, help="Dialect model folder (default: the shipped model)")
    p.add_argument("--n", type=int, default=None, help="sample count (see the command's help)")
    p.add_argument("--seed", type=int, default=None, help="benchmark seed (default: the fixed one)")
    p.add_argument("--split", default=None, help="ShapeWorld split: train | heldout (default train)")
    p.add_argument(
        "--objects", type=int, default=None,
        help="vqa, caption: only scenes with exactly this many objects (default: 1-4, as trained); "
        "separates reading one object from binding attributes across several",
    )  # fmt: skip
    p.add_argument("--scale", type=int, default=0, help="TA-Tok scale for image outputs (default 0)")
    p.add_argument(
        "--decoder", default=None,
        help="de-tokenizer for image outputs: ar | diffusion (default: diffusion when the model ships it)",
    )  # fmt: skip
    p.add_argument(
        "--cfg-scale", type=float, default=None,
        help="geneval, fid: LM guidance on the prompt; edit: on the instruction, or on the input image "
        "for a model trained to null images only (default 1 = off, the paper's sampling; needs a model "
        "trained with model.tasks.t2i_drop; for edits ti2i_text_drop or ti2i_image_drop > 0)",
    )  # fmt: skip
    p.add_argument(
        "--oracle", action="store_true",
        help="geneval, edit: draw the TA-Tok codes of scenes that meet each prompt (or each edit's "
        "target) instead of the LM's: the drawing chain's ceiling, what a perfect LM would score",
    )  # fmt: skip
    p.add_argument(
        "--inception-weights",
        default=None,
        help="fid: TorchScript FID Inception file (inception-2015-12-05.pt)",
    )
    add_compile_flags(
        p, "seconds to compile each batch shape once, then faster text and code decoding; the same tokens"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def fixed_object_count(k: int, image_size: int) -> WorldConfig:
    """The default ShapeWorld at `image_size`, every scene holding exactly `k` objects."""
    default = WorldConfig()
    if not default.min_objects <= k <= default.max_objects:
        raise DialectError(f"--objects must be in {default.min_objects}..{default.max_objects}, got {k}")
    return WorldConfig(size=image_size, min_objects=k, max_objects=k)


def _row(name: str, r: dict) -> str:
    lo, hi = r["ci95"]
    return f"| {name} | {r['value']:.3f} | [{lo:.3f}, {hi:.3f}] | {r['n']} |"


def _table(res: dict) -> str:
    head = ["| category | score | 95% CI | n |", "|---|---|---|---|"]
    rows = []
    for key in ("by_type", "by_category"):
        rows += [_row(k, v) for k, v in res.get(key, {}).items()]
    if isinstance(res.get("overall"), dict):
        rows.append(_row("**overall**", res["overall"]))
    elif "overall" in res:
        rows.append(f"| **overall** (mean of categories) | {res['overall']:.3f} | | |")
    if "f1" in res:
        rows.append(_row("**attribute F1**", res["f1"]))
    if "fid" in res:
        n = f"{res['n_real']} real / {res['n_fake']} generated"
        rows.append(f"| FID ({res['extractor']}) | {res['fid']:.3f} | | {n} |")
        rows.append(f"| KID ({res['extractor']}) | {res['kid']:.5f} | +- {res['kid_std']:.5f} (std) | {n} |")
    meta = {k: v for k, v in res.items() if isinstance(v, (int, float, str)) and k != "overall"}
    return "\n".join([f"# {res['benchmark']}", "", "Settings: " + json.dumps(meta), "", *head, *rows, ""])


def run(args: argparse.Namespace) -> int:
    from dialect.eval import generation, understanding
    from dialect.unified.pipeline import Dialect

    out = Path(args.out)
    guided = {} if args.cfg_scale is None else {"cfg_scale": args.cfg_scale}
    if guided and args.benchmark not in ("geneval", "fid", "edit"):
        raise DialectError("--cfg-scale applies to the image-drawing benchmarks only (geneval, fid, edit)")
    network = None
    if args.benchmark == "fid":  # before loading the model: a missing file fails fast
        from dialect.eval.fid import load_feature_network

        network = load_feature_network(args.inception_weights)
    model = compile_as_asked(Dialect.from_pretrained(args.model), args)
    args.decoder = model.resolve_decoder(args.decoder)  # named in the results, whichever was picked
    kw = {k: v for k, v in (("seed", args.seed), ("split", args.split)) if v is not None}
    examples = {}
    if args.objects is not None and args.benchmark not in ("vqa", "caption"):
        raise DialectError("--objects applies to vqa and caption only")
    if args.oracle and args.benchmark not in ("geneval", "edit"):
        raise DialectError("--oracle applies to geneval and edit only")
    oracle = {"oracle": True} if args.oracle else {}
    if args.benchmark in ("vqa", "caption"):
        if args.objects is not None:
            kw["world"] = fixed_object_count(args.objects, model.image_size)
        bench = understanding.vqa_mini if args.benchmark == "vqa" else understanding.caption_f1
        res = bench(model, n=args.n or 200, **kw)
        if args.objects is not None:
            res["objects"] = args.objects
    elif args.benchmark == "geneval":
        kw.setdefault("split", "all")
        res, examples = generation.geneval_mini(
            model, n_per_category=args.n or 20, scale=args.scale, decoder=args.decoder,
            **kw, **guided, **oracle,
        )  # fmt: skip
    elif args.benchmark == "edit":
        res, examples = generation.edit_mini(
            model, n=args.n or 200, scale=args.scale, decoder=args.decoder, **kw, **guided, **oracle
        )
    elif args.benchmark == "fid":
        res, examples = generation.generation_fid(
            model, network, Path(args.inception_weights).name, n=args.n or 500, scale=args.scale,
            decoder=args.decoder, **{k: v for k, v in kw.items() if k == "seed"}, **guided,
        )  # fmt: skip
    else:
        from dialect.eval.recon import evaluate_reconstruction

        rows, pairs = evaluate_reconstruction(
            model.decoders[args.decoder], WorldConfig(), n=args.n or 500, **kw
        )
        res = {"benchmark": f"recon-{args.decoder}", "scales": rows}
        res["by_type"] = {k: {**proportion(round(r["fidelity"] * r["n"]), r["n"])} for k, r in rows.items()}
        originals, recons = pairs["scale0"] if "scale0" in pairs else next(iter(pairs.values()))
        examples = {"samples": [im for pair in zip(originals[:16], recons[:16], strict=True) for im in pair]}
    out.mkdir(parents=True, exist_ok=True)
    res["model"] = model.path
    if guided:
        res["lm_cfg_scale"] = args.cfg_scale
    (out / "results.json").write_text(json.dumps(res, indent=2))
    (out / "results.md").write_text(_table(res))
    for name, images in examples.items():
        if len(images):
            save_grid(list(images), out / f"{name}.png", ncols=8)
    print(_table(res))
    return 0
