"""Tar's image-token sampling, measured on validation prompts: temperature x top-k -> GenEval / Edit.

    python experiments/lm_sampling.py runs/tiny/model [--n-per-category 10] [--edit-n 100]
        [--temperature 1 0.7 0.4] [--top-k 1200 50] [--cfg-scale 1 3] [--decoder diffusion]
        [--name lm_sampling]

The paper samples T2I image tokens at temperature 1.0, top-p 0.95, top-k 1200, with no guidance in
the LM, settings chosen for a 1.5B/7B model trained on tens of millions of images. Our LM is 4 layers
trained for CPU-minutes: its image-token distributions are much flatter (loss ~1.5 nats per token
at the end of training), so sampling at temperature 1 draws many low-probability codes. This script
measures how GenEval-mini and Edit-mini move with the temperature and top-k of the LM's image
tokens (the de-tokenizer's own sampling stays at its defaults), and with `--cfg-scale` how they move
with classifier-free guidance inside the LM (GenEval-mini only: the null prompt is learnt on
text-to-image prompts; needs a model trained with `model.tasks.t2i_drop` > 0).

The prompts and edits come from VALIDATION_SEED, not from the benchmark seeds in
`dialect.eval.generation`, so a setting chosen here is not tuned to the numbers the model card
reports; the card's numbers stay at the paper's sampling unless stated otherwise.

Writes experiments/results/NAME.md and .json (NAME: `--name`, default lm_sampling).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dialect.eval.generation import edit_mini, geneval_mini
from dialect.unified.pipeline import Dialect

try:
    from experiments.report import machine, write_results
except ImportError:  # run as a script from the repo root
    from report import machine, write_results

RESULTS = Path(__file__).parent / "results"
VALIDATION_SEED = 8_000_017  # differs from every benchmark seed in dialect.eval
TEMPERATURE = (1.0, 0.7, 0.4)
TOP_K = (1200, 50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="Dialect model folder, e.g. runs/tiny/model")
    ap.add_argument("--n-per-category", type=int, default=10, help="GenEval-mini prompts per category")
    ap.add_argument("--edit-n", type=int, default=100, help="Edit-mini edits per setting (0: skip)")
    ap.add_argument("--temperature", type=float, nargs="+", default=list(TEMPERATURE))
    ap.add_argument("--top-k", type=int, nargs="+", default=list(TOP_K))
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--cfg-scale", type=float, nargs="+", default=[1.0], help="LM guidance (1 = off)")
    ap.add_argument("--decoder", default="diffusion", help="de-tokenizer that paints: ar | diffusion")
    ap.add_argument("--name", default="lm_sampling", help="results file stem in experiments/results")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = Dialect.from_pretrained(args.model)
    rows = []
    for temp in args.temperature:
        for k in args.top_k:
            for cfg in args.cfg_scale:
                rows.append(measure(model, args, {"temperature": temp, "top_k": k, "top_p": args.top_p}, cfg))
    result = {
        "model": args.model,
        "decoder": args.decoder,
        "n_per_category": args.n_per_category,
        "edit_n": args.edit_n,
        "top_p": args.top_p,
        "cfg_scale": args.cfg_scale,
        "seed": VALIDATION_SEED,
        "machine": machine(),
        "rows": rows,
    }
    write_results(RESULTS / args.name, result, table(result))


def measure(model: Dialect, args: argparse.Namespace, sampling: dict, cfg: float) -> dict:
    """GenEval-mini and Edit-mini at one sampling setting and LM guidance `cfg` (on the prompt for
    GenEval; for Edit on what the model learnt to null, its instruction or else its input image,
    `TaskConfig.edit_null`); a benchmark whose guidance the model was not trained for is measured
    at cfg 1 only."""
    tasks, t0 = model.tar.config.tasks, time.perf_counter()
    row: dict = {**sampling, "cfg_scale": cfg}
    if args.n_per_category and (cfg == 1 or tasks.trained_for("text")):
        gen, _ = geneval_mini(model, args.n_per_category, seed=VALIDATION_SEED, decoder=args.decoder,
                              progress=False, cfg_scale=cfg, **sampling)  # fmt: skip
        row["geneval"] = gen["overall"]
        row["geneval_by_category"] = {c: v["value"] for c, v in gen["by_category"].items()}
    if args.edit_n and (cfg == 1 or tasks.trained_for(tasks.edit_null())):
        ed, _ = edit_mini(model, args.edit_n, seed=VALIDATION_SEED, decoder=args.decoder,
                          progress=False, cfg_scale=cfg, **sampling)  # fmt: skip
        row["edit"] = ed["overall"]["value"]
        row["edit_by_type"] = {t: v["value"] for t, v in ed["by_type"].items()}
    row["seconds"] = time.perf_counter() - t0
    got = [
        f"{name} {row[key]:.3f}"
        for key, name in (("geneval", "GenEval-mini"), ("edit", "Edit-mini"))
        if key in row
    ]
    print(f"temperature {sampling['temperature']} top-k {sampling['top_k']} cfg {cfg}: "
          f"{', '.join(got) or 'nothing to measure'} ({row['seconds']:.0f} s)")  # fmt: skip
    return row


def table(r: dict) -> str:
    cats = next((list(row["geneval_by_category"]) for row in r["rows"] if "geneval_by_category" in row), [])
    temps = " ".join(f"{t:g}" for t in dict.fromkeys(row["temperature"] for row in r["rows"]))
    ks = " ".join(str(k) for k in dict.fromkeys(row["top_k"] for row in r["rows"]))
    cfgs = " ".join(f"{c:g}" for c in r.get("cfg_scale", [1.0]))
    lines = [
        "# Tar image-token sampling: temperature x top-k x LM guidance on validation prompts",
        "",
        f"Command: `python experiments/lm_sampling.py {r['model']} --n-per-category {r['n_per_category']} "
        f"--edit-n {r['edit_n']} --temperature {temps} --top-k {ks} --cfg-scale {cfgs} "
        f"--decoder {r['decoder']}`; top-p "
        f"{r['top_p']}; GenEval-mini prompts ({r['n_per_category']} per category, 4 images each) and "
        f"Edit-mini edits ({r['edit_n']}) from the validation seed {r['seed']} (no benchmark seed), "
        f"painted by the {r['decoder']} de-tokenizer at its default sampling; {r['machine']}. "
        "The paper's setting is temperature 1, top-k 1200, no guidance in the LM (LM guidance 1). "
        "LM guidance is on the prompt for GenEval-mini and, for Edit-mini, on the instruction when the "
        "model was trained with `ti2i_text_drop`, else on the input image; '-': not "
        "measured (the model was not trained for that guidance).",
        "",
        "| "
        + " | ".join(["temperature", "top-k", "LM guidance", "GenEval-mini", *cats, "Edit-mini", "seconds"])
        + " |",
        "|---|---|---|---|" + "---|" * len(cats) + "---|---|",
    ]
    for row in r["rows"]:
        per = [f"{row['geneval_by_category'][c]:.2f}" if "geneval" in row else "-" for c in cats]
        gen = f"{row['geneval']:.3f}" if "geneval" in row else "-"
        edit = f"{row['edit']:.3f}" if "edit" in row else "-"
        lines.append(
            f"| {row['temperature']:g} | {row['top_k']} | {row.get('cfg_scale', 1.0):g} | {gen} | "
            + " | ".join([*per, edit, f"{row['seconds']:.0f}"])
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
