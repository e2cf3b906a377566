"""TA-Tok per-scale quality, text-aligned vs learned codebook at equal steps.

Reproduce (tiny preset, CPU):
    dialect train encoder --preset tiny
    dialect train tatok --preset tiny
    dialect train tatok --preset tiny model.vq.codebook=learned train.out_dir=runs/tiny/tatok-learned
    python experiments/tatok_codebooks.py runs/tiny/tatok/model runs/tiny/tatok-learned/model

Writes experiments/results/tatok_codebooks.md (and .json): per scale, feature-reconstruction
cosine, codebook usage (% of K) and perplexity on 2,000 fresh scenes, and linear-probe accuracy
for shape and colour on the decoded features of 2,000 single-object scenes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dialect.eval.tatok_eval import evaluate_tatok
from dialect.tokenizers.tatok import TATok
from dialect.world import WorldConfig

OUT = Path(__file__).parent / "results" / "tatok_codebooks"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="TA-Tok folders to compare")
    ap.add_argument("--n", type=int, default=2000, help="eval scenes (and single-object probe scenes)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    rows, raw = [], {}
    for path in args.models:
        model = TATok.from_pretrained(path)
        steps = _steps(Path(path))
        t0 = time.perf_counter()
        res = evaluate_tatok(model, WorldConfig(), n=args.n)
        raw[path] = {"codebook": model.config.vq.codebook, "steps": steps, "results": res}
        for scale, r in res.items():
            rows.append(
                f"| {model.config.vq.codebook} | {steps} | {scale} ({r['tokens']} tok) | {r['cosine']:.3f} "
                f"| {100 * r['usage']:.1f}% of {model.config.vq.num_codes} | {r['perplexity']:.0f} "
                f"| {r['probe_shape']:.3f} | {r['probe_color']:.3f} |"
            )
        print(f"{path}: evaluated in {time.perf_counter() - t0:.0f} s")
    header = (
        f"# TA-Tok: text-aligned vs learned codebook, per scale\n\n"
        f"Command: `python experiments/tatok_codebooks.py {' '.join(args.models)}`; {args.n} fresh "
        f"ShapeWorld scenes (seed 2000003) for cosine/usage/perplexity and {args.n} single-object scenes "
        "for the probes (75/25 split, L-BFGS logistic regression on the mean- and max-pooled decoded "
        "features, concatenated).\n\n"
        "| codebook | steps | scale | feature cosine | usage | perplexity | probe shape | probe color |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    table = header + "\n".join(rows) + "\n"
    print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".md").write_text(table)
    OUT.with_suffix(".json").write_text(json.dumps(raw, indent=2))


def _steps(model_dir: Path) -> int | str:
    metrics = model_dir.parent / "metrics.jsonl"
    if not metrics.is_file():
        return "?"
    return json.loads(metrics.read_text().splitlines()[-1])["step"]


if __name__ == "__main__":
    main()
