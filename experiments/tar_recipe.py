"""Which LM training recipe reads images best in the tiny preset's budget? (loss weighting, VQA turns)

Every variant trains `dialect train lm` from one base config (same TA-Tok, steps, batch, data seed)
and differs only in its overrides:
- `model.text_loss_weight`: an image answer is 64+ loss tokens and a VQA answer 2, so at weight 1
  the text tokens get ~6% of the gradient; w > 1 weights each text token w times in the mean;
- `model.tasks.vqa_turns`: question/answer turns about one image per VQA sample (LLaVA-style
  multi-turn), so the 64 image tokens are paid once for several answers.
Each final model is graded with the project's benchmarks on their fixed seeds: VQA-mini (per
question type) and caption attribute F1 on 200 scenes of the train and held-out splits (greedy),
and optionally GenEval-mini drawn by a de-tokenizer from `--decoders` (a model folder).

Reproduce (the base config is the tiny preset's LM stage as `dialect train all` wrote it):
    python experiments/tar_recipe.py --base runs/p5/lm/config.yaml --decoders runs/p5/model \
        [--variants old text5 text5-turns8] [--geneval 10]
Runs go to runs/tar_recipe/<variant> (a run folder with model/ is not retrained); writes
experiments/results/tar_recipe.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from notes import write_keeping_notes  # noqa: E402

OUT = Path(__file__).parent / "results" / "tar_recipe"
# every variant names all three settings, so the table does not depend on the preset's defaults
VARIANTS = {
    "old": ["model.text_loss_weight=1", "model.tasks.vqa_turns=1", "model.tasks.weights.vqa=2.0"],
    "text5": ["model.text_loss_weight=5", "model.tasks.vqa_turns=1", "model.tasks.weights.vqa=2.0"],
    "text5-turns8": ["model.text_loss_weight=5", "model.tasks.vqa_turns=8", "model.tasks.weights.vqa=1.0"],
    "text5-turns8-lr2e-3": [
        "model.text_loss_weight=5", "model.tasks.vqa_turns=8", "model.tasks.weights.vqa=1.0",
        "train.lr=2.0e-3",
    ],
}  # fmt: skip


def check_run(run: Path, name: str) -> None:
    """A run trained earlier must have been trained with the variant's settings."""
    import yaml
    from omegaconf import OmegaConf

    from dialect.core.config import load_config
    from dialect.train.recipes.lm import LMRun

    cfg = OmegaConf.structured(load_config(LMRun, run / "config.yaml"))
    for item in VARIANTS[name]:
        key, value = item.split("=", 1)
        if OmegaConf.select(cfg, key) != yaml.safe_load(value):
            raise SystemExit(f"{run} was trained with {key}={OmegaConf.select(cfg, key)}, not {value}")


def train(base: str, name: str, run: Path, threads: int) -> float | None:
    """Train one variant unless `run/model` exists -> wall seconds (None when skipped)."""
    if (run / "model" / "config.json").is_file():
        check_run(run, name)
        return None
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "dialect.cli.main", "train", "lm", "--config", base, *VARIANTS[name],
           f"train.out_dir={run}", "train.progress=false"]  # fmt: skip
    print("running:", " ".join(cmd[2:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - t0


def evaluate(run: Path, decoders: str, n: int, geneval: int) -> dict:
    import torch

    from dialect.eval.generation import geneval_mini
    from dialect.eval.understanding import caption_f1, vqa_mini
    from dialect.unified import Tar
    from dialect.unified.pipeline import Dialect

    torch.set_grad_enabled(False)
    shipped = Dialect.from_pretrained(decoders) if geneval else None
    d = Dialect(Tar.from_pretrained(run / "model"), shipped.decoders if shipped else {})
    out: dict = {}
    for split in ("train", "heldout"):
        v = vqa_mini(d, n=n, split=split, progress=False)
        out[f"vqa/{split}"] = v["overall"]["value"]
        out[f"vqa_types/{split}"] = {t: r["value"] for t, r in v["by_type"].items()}
        out[f"f1/{split}"] = caption_f1(d, n=n, split=split, progress=False)["f1"]["value"]
    if geneval:
        g, _ = geneval_mini(d, n_per_category=geneval, progress=False)
        out["geneval"] = g["overall"]
        out["geneval_decoder"] = d.default_decoder
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--base", default="runs/p5/lm/config.yaml", help="the LM run config every variant starts from"
    )
    ap.add_argument("--decoders", default="runs/p5/model", help="model folder whose de-tokenizers draw")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--root", default="runs/tar_recipe")
    ap.add_argument("--n", type=int, default=200, help="scenes per split for VQA-mini and caption F1")
    ap.add_argument("--geneval", type=int, default=10, help="GenEval-mini prompts per category (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").is_file() else {}
    for name in args.variants:
        run = Path(args.root) / name
        seconds = train(args.base, name, run, args.threads)
        r = {"overrides": VARIANTS[name], **evaluate(run, args.decoders, args.n, args.geneval)}
        if seconds is not None:
            r["train_min"] = round(seconds / 60, 1)
        elif name in results and "train_min" in results[name]:
            r["train_min"] = results[name]["train_min"]
        results[name] = r
        print(name, json.dumps(r), flush=True)
    write(results, args)


def write(results: dict, args) -> None:
    types = ("color", "shape", "size", "count", "existence", "position")
    lines = [
        "# Tar: LM training recipes at the tiny preset's budget",
        "",
        f"Command: `python experiments/tar_recipe.py --base {args.base} --decoders {args.decoders} "
        f"--geneval {args.geneval}`. Every variant: the base config's steps, batch, seed and TA-Tok; only "
        f"the overrides differ. VQA-mini and caption F1: {args.n} scenes per split, fixed benchmark seeds, "
        "greedy answers. GenEval-mini: the fixed prompt set, 4 images per prompt, paper sampling "
        "(temperature 1, top-p 0.95, top-k 1200), drawn by the named de-tokenizer.",
        "",
        "| variant | overrides | train min | VQA train | VQA held-out | F1 train | F1 held-out | GenEval |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        gen = f"{r['geneval']:.3f} ({r['geneval_decoder']})" if "geneval" in r else "-"
        lines.append(
            f"| {name} | `{' '.join(r['overrides'])}` | {r.get('train_min', '-')} | {r['vqa/train']:.3f} "
            f"| {r['vqa/heldout']:.3f} | {r['f1/train']:.3f} | {r['f1/heldout']:.3f} | {gen} |"
        )
    lines += ["", "VQA-mini by question type (train split / held-out split):", "",
              "| variant | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]  # fmt: skip
    for name, r in results.items():
        tr, ho = r["vqa_types/train"], r["vqa_types/heldout"]
        cells = [f"{tr.get(t, float('nan')):.2f} / {ho.get(t, float('nan')):.2f}" for t in types]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    write_keeping_notes(OUT.with_suffix(".md"), "\n".join(lines) + "\n")
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
