"""Does the text-aligned initialisation make Tar converge faster? (the paper's convergence claim)

Trains the LM (`dialect train lm`) with `model.init` = text-aligned | random | mean at equal steps,
data and seeds (>= 2 seeds each), then reports:
- the loss curves (ShapeWorld samples are drawn fresh at every step and never repeat, so the
  training loss is a held-out loss), overall and split into image-token and text-token loss;
- the steps each run needs to reach a fixed loss (first logged step at or below it);
- VQA-mini accuracy and caption attribute F1 of each final model (greedy decoding).

Reproduce (needs the tiny TA-Tok: `dialect train encoder --preset tiny && dialect train tatok --preset tiny`):
    python experiments/tar_init.py --steps 400 --seeds 0 1 [--parallel 2]
Writes experiments/results/tar_init.{md,json,png}. Runs go to runs/tar_init/<mode>-s<seed>.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "results" / "tar_init"
MODES = ("text-aligned", "random", "mean")


def curves(run: Path) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    keys = ("step", "loss", "image_loss", "text_loss")
    return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in keys}


def steps_to(c: dict[str, np.ndarray], target: float) -> int | None:
    hit = np.nonzero(c["loss"] <= target)[0]
    return int(c["step"][hit[0]]) if hit.size else None


def train_runs(args, jobs: list[tuple[str, int, Path]]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    pending = [j for j in jobs if not (j[2] / "model" / "config.json").is_file()]
    while pending:
        batch, pending = pending[: args.parallel], pending[args.parallel :]
        procs = []
        for mode, seed, run in batch:
            cmd = [sys.executable, "-m", "dialect.cli.main", "train", "lm", "--preset", args.preset,
                   f"model.init={mode}", f"train.seed={seed}", f"train.steps={args.steps}",
                   f"train.out_dir={run}", "train.progress=false", f"tatok={args.tatok}",
                   *args.overrides]  # fmt: skip
            print("running:", " ".join(cmd[2:]), flush=True)
            procs.append(subprocess.Popen(cmd, env=env))
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"a run failed (exit {p.returncode})")


def evaluate(run: Path, n: int) -> dict:
    import torch

    from dialect.eval.understanding import caption_f1, vqa_mini
    from dialect.unified import Tar
    from dialect.unified.pipeline import Dialect

    torch.set_grad_enabled(False)
    tar = Tar.from_pretrained(run / "model").eval()

    r = Dialect(tar, {})  # the understanding half of the pipeline: no de-tokenizer needed
    return {
        "vqa": vqa_mini(r, n=n, progress=False)["overall"]["value"],
        "caption_f1": caption_f1(r, n=n, progress=False)["f1"]["value"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--tatok", default="runs/tiny/tatok/model")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    ap.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each by default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-n", type=int, default=100, help="scenes for VQA-mini / caption F1")
    ap.add_argument("--root", default="runs/tar_init")
    ap.add_argument("overrides", nargs="*", help="extra key=value for every run (e.g. train.batch_size=16)")
    args = ap.parse_args()
    jobs = [(m, s, Path(args.root) / f"{m}-s{s}") for m in args.modes for s in args.seeds]
    train_runs(args, jobs)
    data = {f"{m}-s{s}": curves(run) for m, s, run in jobs}
    # the fixed loss: what the worst run reaches at the end, so every run can be timed against it
    target = float(max(np.nanmin(c["loss"][-3:]) for c in data.values()))
    results = {}
    for m, s, run in jobs:
        c = data[f"{m}-s{s}"]
        results[f"{m}-s{s}"] = {
            "mode": m, "seed": s, "final_loss": float(np.nanmean(c["loss"][-3:])),
            "final_image_loss": float(np.nanmean(c["image_loss"][-3:])),
            "final_text_loss": float(np.nanmean(c["text_loss"][-3:])),
            "steps_to_target": steps_to(c, target), **evaluate(run, args.eval_n),
        }  # fmt: skip
        print(json.dumps(results[f"{m}-s{s}"]), flush=True)
    plot(data, jobs, target)
    write(results, args, target)


def plot(data, jobs, target) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colors = dict(zip(MODES, ("tab:green", "tab:red", "tab:blue"), strict=True))
    for ax, key in zip(axes, ("loss", "image_loss", "text_loss"), strict=True):
        for m, s, _ in jobs:
            c = data[f"{m}-s{s}"]
            ax.plot(c["step"], c[key], color=colors.get(m), alpha=0.8, label=f"{m} (seed {s})")
        ax.set_title(key.replace("_", " ") + " (fresh samples)")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        if key == "loss":
            ax.axhline(target, color="gray", ls="--", lw=1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT.with_suffix(".png"), dpi=120)


def write(results: dict, args, target: float) -> None:
    seeds = " ".join(map(str, args.seeds))
    extra = " " + " ".join(args.overrides) if args.overrides else ""
    lines = [
        "# Tar: text-aligned vs random vs mean initialisation of the new vocabulary rows",
        "",
        f"Command: `python experiments/tar_init.py --steps {args.steps} --seeds {seeds}{extra}` "
        f"(preset {args.preset}, TA-Tok {args.tatok}).",
        f"Fixed loss for 'steps to reach': {target:.4f} (the worst run's final loss). VQA-mini and "
        f"caption F1 on {args.eval_n} fresh scenes, greedy decoding. Curves: [tar_init.png](tar_init.png).",
        "",
        "| run | final loss | image-token loss | text-token loss | steps to target | VQA-mini | caption F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['final_loss']:.4f} | {r['final_image_loss']:.4f} | {r['final_text_loss']:.4f} "
            f"| {r['steps_to_target']} | {r['vqa']:.3f} | {r['caption_f1']:.3f} |"
        )
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    OUT.with_suffix(".json").write_text(json.dumps({"target": target, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
