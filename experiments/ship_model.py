"""Evaluate a trained Dialect model folder and ship it as the package's default model.

    python experiments/ship_model.py runs/tiny/model [--dest src/dialect/models/default] [--dtype bf16]

1. copies the folder's `tar/` and de-tokenizer folders to DEST with weights cast to `--dtype`
   (bf16 halves the size; the benchmarks below run on the cast copy, so they measure what ships);
2. runs VQA-mini, caption attribute F1, GenEval-mini and Edit-mini (fixed seeds, train split and
   the held-out attribute split; GenEval-mini also split by prompts naming a held-out pair; the two
   image-grading benchmarks once per shipped de-tokenizer; VQA-mini of the cast copy against the
   full-precision source) and writes DEST/README.md (the model card: how it was trained, data,
   metrics with 95% intervals, limits) and DEST/metrics.json.
The stage times come from `train all`'s timings.json in the model folder; `--note "..."` adds what
they do not tell (e.g. a stage trained longer than its preset).

    python experiments/ship_model.py --card-only [--dest DIR]

rewrites DEST/README.md from DEST/metrics.json without evaluating again (after a change to the
card's text).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dialect.eval.generation import edit_mini, geneval_mini
from dialect.eval.understanding import caption_f1, vqa_mini
from dialect.unified.pipeline import Dialect

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def cast_copy(src: Path, dest: Path, dtype: torch.dtype) -> None:
    """Copy a model folder, storing floating-point weights in `dtype` (loading casts them back)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("model.safetensors"))
    state = load_file(str(src / "model.safetensors"))
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(cast, str(dest / "model.safetensors"))


def gen_key(name: str, decoder: str) -> str:
    """metrics.json key of an image-grading benchmark: the AR de-tokenizer's keeps the plain name
    (`edit/train`, `geneval/all`), another decoder's gets `@decoder` appended."""
    return name if decoder == "ar" else f"{name}@{decoder}"


def fmt(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{r['value']:.3f} [{lo:.3f}, {hi:.3f}] (n={r['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="Dialect model folder (tar/, ar/, ...), e.g. runs/tiny/model")
    ap.add_argument("--dest", default="src/dialect/models/default")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    # 500 / 25: at 200 / 10 the same weights trained 300 steps longer moved Edit-mini 0.070 -> 0.135
    # and GenEval-mini 0.333 -> 0.438, noise that ranked models wrongly (2026-11-25)
    ap.add_argument("--n", type=int, default=500, help="scenes for VQA / captions / edits")
    ap.add_argument("--prompts", type=int, default=25, help="GenEval-mini prompts per category")
    ap.add_argument(
        "--cfg-scale", type=float, default=3.0,
        help="GenEval-mini once more with this LM guidance, for a model trained with prompt dropout "
        "(model.tasks.t2i_drop > 0; default 3, chosen on validation prompts by experiments/lm_sampling.py)",
    )  # fmt: skip
    ap.add_argument(
        "--edit-cfg-scale", type=float, default=2.0,
        help="Edit-mini once more with this LM guidance, for a model trained with edit dropout "
        "(model.tasks.ti2i_text_drop or ti2i_image_drop > 0; default 2, chosen on validation edits by "
        "experiments/lm_sampling.py)",
    )  # fmt: skip
    ap.add_argument("--card-only", action="store_true", help="rewrite DEST/README.md from DEST/metrics.json")
    ap.add_argument(
        "--note", default=None,
        help="training detail the stage times do not tell (e.g. an optional stage's steps); printed under "
        "'How it was trained' and kept in metrics.json",
    )  # fmt: skip
    args = ap.parse_args()
    dest = Path(args.dest)
    if args.card_only:
        metrics = json.loads((dest / "metrics.json").read_text())
        if args.note:  # kept, so the next --card-only prints it too
            metrics.setdefault("settings", {})["note"] = args.note
            (dest / "metrics.json").write_text(json.dumps(metrics, indent=2))
        write_card(dest, metrics, args)
        return
    if not args.model:
        ap.error("give the model folder to evaluate (or --card-only)")
    src = Path(args.model)
    dest.mkdir(parents=True, exist_ok=True)
    parts = [p.name for p in src.iterdir() if (p / "config.json").is_file()]
    for name in parts:
        cast_copy(src / name, dest / name, DTYPES[args.dtype])
    if (src / "timings.json").is_file():
        shutil.copy(src / "timings.json", dest / "timings.json")
    torch.set_grad_enabled(False)
    d = Dialect.from_pretrained(dest)
    t0 = time.perf_counter()
    metrics = {}
    tasks = d.tar.config.tasks
    guided = tasks.trained_for("text") and args.cfg_scale != 1
    edit_guided = tasks.trained_for(tasks.edit_null()) and args.edit_cfg_scale != 1
    for split in ("train", "heldout"):
        metrics[f"vqa/{split}"] = vqa_mini(d, n=args.n, split=split)
        metrics[f"caption/{split}"] = caption_f1(d, n=args.n, split=split)
    # the graded-image benchmarks once per shipped de-tokenizer (same prompts, scenes and seeds)
    for dec in sorted(d.decoders):
        for split in ("train", "heldout"):
            metrics[gen_key(f"edit/{split}", dec)] = edit_mini(d, n=args.n, split=split, decoder=dec)[0]
            if edit_guided:  # the same edits and seeds, the LM sampling with guidance
                metrics[gen_key(f"edit_guided/{split}", dec)] = edit_mini(
                    d, n=args.n, split=split, decoder=dec, cfg_scale=args.edit_cfg_scale
                )[0]
        metrics[gen_key("geneval/all", dec)] = geneval_mini(d, n_per_category=args.prompts, decoder=dec)[0]
        if guided:  # the same prompts and seeds, the LM sampling with guidance
            metrics[gen_key("geneval/guided", dec)] = geneval_mini(
                d, n_per_category=args.prompts, decoder=dec, cfg_scale=args.cfg_scale
            )[0]
    # does the cast copy keep the quality? the same VQA-mini scenes on the full-precision source
    full = Dialect.from_pretrained(src)
    metrics["dtype_check"] = {
        args.dtype: vqa_mini(d, n=100)["overall"],
        "fp32": vqa_mini(full, n=100)["overall"],
        "n_scenes": 100,
    }
    metrics["eval_seconds"] = round(time.perf_counter() - t0, 1)
    cpu = platform.processor() or platform.machine()
    metrics["machine"] = f"{torch.get_num_threads()} thread(s), {cpu}, torch {torch.__version__}"
    metrics["settings"] = {
        "dtype": args.dtype, "n": args.n, "prompts": args.prompts, "note": args.note or "",
        "cfg_scale": args.cfg_scale if guided else 1.0,
        "edit_cfg_scale": args.edit_cfg_scale if edit_guided else 1.0,
        "edit_null": tasks.edit_null() if edit_guided else "",
    }  # fmt: skip
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_card(dest, metrics, args)


def write_card(dest: Path, metrics: dict, args) -> None:
    """DEST/README.md from the metrics, the stage times and the shipped folders' configs."""
    for key, value in metrics.get("settings", {}).items():  # what the metrics were measured with
        if not (key == "note" and args.note):  # a note given now replaces the stored one
            setattr(args, key, value)
    parts = sorted(p.name for p in dest.iterdir() if (p / "config.json").is_file())
    timings = json.loads((dest / "timings.json").read_text()) if (dest / "timings.json").is_file() else {}
    size_mb = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file() and f.name != "README.md") / 2**20
    ar, dif = (
        json.loads((dest / p / "config.json").read_text()) if p in parts else None
        for p in ("ar", "diffusion")
    )
    tar = json.loads((dest / "tar" / "config.json").read_text())
    (dest / "README.md").write_text(card(metrics, timings, size_mb, args, parts, ar, dif, tar))
    print((dest / "README.md").read_text())


def geneval_rows(g: dict, tag: str) -> list[str]:
    """The card's GenEval-mini rows of one result: overall, per category, held-out pairs vs the rest."""
    rows = [f"| GenEval-mini overall ({tag}) | {g['overall']:.3f} (mean of categories) |"]
    rows += [f"| GenEval-mini {c} ({tag}) | {fmt(r)} |" for c, r in g["by_category"].items()]
    rows.append(f"| GenEval-mini, prompts naming a held-out pair ({tag}) | {fmt(g['heldout_pairs'])} |")
    rows.append(f"| GenEval-mini, the other prompts ({tag}) | {fmt(g['seen_pairs'])} |")
    return rows


def card(
    m: dict, timings: dict, size_mb: float, args, parts: list[str], ar: dict | None, dif: dict | None,
    tar: dict,
) -> str:  # fmt: skip
    rows = []
    for split in ("train", "heldout"):
        v = m[f"vqa/{split}"]
        rows.append(f"| VQA-mini overall ({split}) | {fmt(v['overall'])} |")
        rows += [f"| VQA-mini {t} ({split}) | {fmt(r)} |" for t, r in v["by_type"].items()]
        rows.append(f"| caption attribute F1 ({split}) | {fmt(m[f'caption/{split}']['f1'])} |")
    for dec in [p for p in parts if p != "tar" and gen_key("geneval/all", p) in m]:
        tag = f"{dec} de-tokenizer"
        for split in ("train", "heldout"):
            e = m[gen_key(f"edit/{split}", dec)]
            rows.append(f"| Edit-mini overall ({split}, {tag}) | {fmt(e['overall'])} |")
            rows += [f"| Edit-mini {t} ({split}, {tag}) | {fmt(r)} |" for t, r in e["by_type"].items()]
            guided = m.get(gen_key(f"edit_guided/{split}", dec))
            if guided:
                # what the guidance nulled, as recorded when measured (absent from older metrics)
                on = {"instruction": " on the instruction", "image": " on the input image"}.get(
                    getattr(args, "edit_null", ""), ""
                )
                gtag = f"{split}, {tag}, LM guidance {args.edit_cfg_scale:g}{on}"
                rows.append(f"| Edit-mini overall ({gtag}) | {fmt(guided['overall'])} |")
                rows += [f"| Edit-mini {t} ({gtag}) | {fmt(r)} |" for t, r in guided["by_type"].items()]
        rows += geneval_rows(m[gen_key("geneval/all", dec)], tag)
        if gen_key("geneval/guided", dec) in m:
            rows += geneval_rows(m[gen_key("geneval/guided", dec)], f"{tag}, LM guidance {args.cfg_scale:g}")
    dc = m["dtype_check"]
    cast, full = dc[args.dtype]["value"], dc["fp32"]["value"]
    rows.append(f"| VQA-mini, {args.dtype} weights vs fp32 (same 100 scenes) | {cast:.3f} vs {full:.3f} |")
    decoders = ", ".join(p for p in parts if p != "tar")
    stage_times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items())
    sampling = (
        f" The AR de-tokenizer samples with guidance {ar['guidance']:g} at temperature {ar['temperature']:g}"
        " (0 = greedy), chosen on validation scenes by `experiments/ardtok_sampling.py`"
        " ([results](../../../../experiments/results/ardtok_sampling.md))."
        if ar
        else ""
    )
    if dif:
        sampling += (
            f" The diffusion de-tokenizer takes {dif['sample_steps']} Euler steps at guidance"
            f" {dif['guidance']:g}."
        )
    recipe = (
        f" The LM weights each text token {tar.get('text_loss_weight', 1.0):g}x in its loss and asks up to"
        f" {tar['tasks'].get('vqa_turns', 1)} questions per VQA image"
        " ([tar_recipe.md](../../../../experiments/results/tar_recipe.md))."
    )
    if tar["tasks"].get("t2i_drop", 0.0) > 0:
        recipe += (
            f" A share of {tar['tasks']['t2i_drop']:g} of its text-to-image prompts is nulled in training"
            " (every word piece -> `[PAD]`), so the LM can also sample with classifier-free guidance"
            " against that null prompt (`--cfg-scale`; off by default, as in the paper): the rows marked"
            " 'LM guidance' use it, every other row samples as the paper does"
            " ([lm_guidance.md](../../../../experiments/results/lm_guidance.md))."
        )
    if tar["tasks"].get("ti2i_anchor", 0.0) > 0:
        recipe += (
            " Each edit's target image is tokenized anchored to its source image (a target code keeps"
            f" the source's where that is within {tar['tasks']['ti2i_anchor']:g} of the best cosine"
            " similarity), so an edit changes the codes of what it changes only"
            " ([edit_anchor.md](../../../../experiments/results/edit_anchor.md))."
        )
    if tar["tasks"].get("ti2i_text_drop", 0.0) > 0:
        recipe += (
            f" A share of {tar['tasks']['ti2i_text_drop']:g} of its edit instructions is nulled in training,"
            " so an edit can be guided on its instruction (`dialect edit --cfg-scale`; off by default):"
            " the rows marked 'LM guidance' under Edit-mini use it."
        )
    if tar["tasks"].get("vqa_describe", 0.0) > 0:
        recipe += (
            f" A share of {tar['tasks']['vqa_describe']:g} of its VQA samples opens with a caption turn"
            " ([vqa_binding.md](../../../../experiments/results/vqa_binding.md))."
        )
    return f"""# dialect default model (tiny preset)

The model `dialect caption|ask|generate|edit` use when no `--model` is given.

- **What it is**: Tar, a 4-layer width-256 decoder-only LM whose vocabulary holds MiniLM word pieces,
  chat/image markers and the 4,096 TA-Tok codes, with its frozen TA-Tok (text-aligned codebook from
  MiniLM word embeddings, 64/16/4 tokens per 64x64 image) and the de-tokenizer(s) {decoders}.
- **How it was trained**: `dialect train all --preset tiny` on a 2-core CPU, from scratch, on procedural
  ShapeWorld data only (captions, VQA, text-to-image, image-to-image, edits).{recipe}
  Stage times: {stage_times or "not recorded"}.{" " + args.note if getattr(args, "note", "") else ""}
- **Weights**: stored in {args.dtype} ({size_mb:.1f} MB for the folder); every metric below was measured on
  this cast copy.
- **Metrics** (`python experiments/ship_model.py`; fixed benchmark seeds; 95% Wilson/bootstrap intervals;
  {args.n} scenes for VQA/captions/edits, {args.prompts} prompts per GenEval category x 4 images; images
  drawn at the finest scale by each de-tokenizer named in the row; {m["machine"]};
  {m["eval_seconds"] / 60:.1f} min).{sampling}

| benchmark | score |
|---|---|
{chr(10).join(rows)}

- **Limits**: a toy world (64x64 coloured shapes on white); trained for CPU-minutes, so it is far from the
  paper's numbers and from the project's targets (see the issues). Images that are not ShapeWorld-like are
  read as the nearest ShapeWorld scene. Drawing is the weakest part: even from the tokens of a real
  image, the de-tokenizers redraw the whole scene right (every object's shape, colour, size and
  place) only for part of the scenes, and for far fewer when a scene holds a colour-shape pair
  unseen in training
  ([detok_fidelity.md](../../../../experiments/results/detok_fidelity.md)), so GenEval-mini and
  Edit-mini, which grade the drawn image, stay low while the LM's answers and captions, read
  from the tokens directly, are far better (`experiments/results/`). Among the answers, those
  about one object of several are the weak ones: the LM reads an object's colour, shape and size
  when it is alone but binds them poorly when there are more, above all when the question names
  the object by its shape ([vqa_binding.md](../../../../experiments/results/vqa_binding.md)).
"""


if __name__ == "__main__":
    main()
