"""De-tokenizers per TA-Tok scale: semantic fidelity, PSNR/SSIM and speed on held-out scenes.

Reproduce (tiny presets, CPU; each step reuses the previous one's output):
    dialect train encoder --preset tiny && dialect train tatok --preset tiny
    dialect train pixelvq --preset tiny && dialect train ids --preset tiny
    dialect train ardtok --preset tiny && dialect train difdtok --preset tiny
    python experiments/detok_fidelity.py --ar runs/tiny/ardtok/model --diffusion runs/tiny/difdtok/model

Writes experiments/results/detok_fidelity.md (and .json, and one example sheet per decoder and
scale under experiments/results/detok_fidelity/): for each decoder x scale on `--n` unseen
ShapeWorld scenes, semantic fidelity (graded scene == original scene), PSNR, SSIM and seconds per
image on this machine. `--split heldout` (the default): every scene holds a colour-shape pair that
no training scene has (compositional generalisation); `--split train`: fresh scenes drawn like the
training ones (never seen either: other seeds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dialect.cli.detok import load_detokenizer
from dialect.core.images import save_grid
from dialect.eval.recon import EVAL_SEED, evaluate_reconstruction, score_reconstructions
from dialect.world import WorldConfig

try:
    from experiments.notes import write_keeping_notes
    from experiments.report import machine
except ImportError:  # run as a script from the repo root
    from notes import write_keeping_notes
    from report import machine

OUT = Path(__file__).parent / "results" / "detok_fidelity"


LEGACY_SAMPLING = {"ar": "g4 t1", "diffusion": "25 steps, g3"}


def sampling_of(kind: str, model) -> str:
    """A de-tokenizer's default sampling, as the table shows it."""
    c = model.config
    return (
        f"g{c.guidance:g} t{c.temperature:g}" if kind == "ar" else f"{c.sample_steps} steps, g{c.guidance:g}"
    )


def recovered(row: dict) -> str:
    """The table's recovery cell: shape / colour / size / position / count, or '-' for rows
    measured before it was recorded."""
    rec = row.get("recovery")
    if not rec:
        return "-"
    return " / ".join(f"{rec[k]:.2f}" for k in ("shape", "color", "size", "position", "count"))


def apply_overrides(model, pairs: list[str]) -> str:
    """Set `FIELD=VALUE` pairs on `model.config` (values parsed as YAML scalars: 50, 2.5, false)
    -> a label suffix naming them ('' when there are none)."""
    import yaml

    for pair in pairs:
        name, _, value = pair.partition("=")
        if not hasattr(model.config, name):
            raise SystemExit(f"--set: {type(model.config).__name__} has no field {name!r}")
        old, new = getattr(model.config, name), yaml.safe_load(value)
        if not isinstance(new, type(old)) and not (isinstance(old, float) and type(new) is int):
            raise SystemExit(f"--set {pair}: {name} takes a {type(old).__name__}, got {value!r}")
        setattr(model.config, name, new)
    return f" {{{', '.join(pairs)}}}" if pairs else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ar", action="append", default=[], help="AR-DTok folder (repeatable)")
    ap.add_argument("--diffusion", action="append", default=[], help="Dif-DTok folder (repeatable)")
    ap.add_argument("--n", type=int, default=500, help="held-out scenes per decoder and scale")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--scales", type=int, nargs="+", default=None, help="TA-Tok scales (default: all)")
    ap.add_argument(
        "--split", default="heldout", choices=("heldout", "train"),
        help="heldout: scenes with unseen colour-shape pairs (default); train: fresh training-like scenes",
    )  # fmt: skip
    ap.add_argument(
        "--set", nargs="+", default=[], metavar="FIELD=VALUE",
        help="override sampling fields of the models' configs (e.g. sample_steps=50 guidance=2 snap=false); "
        "the rows are labelled with them",
    )  # fmt: skip
    ap.add_argument("--merge", action="store_true", help="keep the other models' rows of the last run")
    ap.add_argument("--table-only", action="store_true", help="rewrite the .md from the .json, run nothing")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    raw = (
        json.loads(OUT.with_suffix(".json").read_text())
        if (args.merge or args.table_only) and OUT.with_suffix(".json").is_file()
        else {}
    )
    machine_line = machine()
    todo = [("ar", p) for p in args.ar] + [("diffusion", p) for p in args.diffusion]
    for kind, path in [] if args.table_only else todo:
        model = load_detokenizer(kind, path)
        overridden = apply_overrides(model, args.set)
        run = Path(path).parent  # the run folder, named with its parent (runs/tiny/x vs runs/all/x)
        tag = "" if args.split == "heldout" else " [train split]"
        label = f"{kind} ({run.parent.name}/{run.name}){overridden}{tag}"
        if "pixelvq" not in raw:  # the pixel VQ alone: what a perfect de-tokenizer could reach
            codec = lambda x, b, m=model: m.codec(x).clamp(-1, 1)  # noqa: E731
            row, _ = score_reconstructions(codec, WorldConfig(), args.n, args.batch_size, desc="pixel VQ")
            raw["pixelvq"] = {"model": "codec of " + path, "machine": machine_line, "results": {"image": row}}
        res, examples = evaluate_reconstruction(
            model, WorldConfig(), n=args.n, scales=args.scales, batch_size=args.batch_size, split=args.split
        )
        # a model's scales measured earlier stay (--merge): a run over other scales adds to them
        kept = raw[label]["results"] if label in raw and raw[label].get("model") == path else {}
        raw[label] = {
            "model": path, "machine": machine_line, "sampling": sampling_of(kind, model), "split": args.split,
            "results": {**kept, **res},
        }  # fmt: skip
        for scale, (originals, recons) in examples.items():
            pairs = np.stack([originals[:16], recons[:16]], axis=1).reshape(-1, *originals.shape[1:])
            name = label.replace(" [train split]", "_train").replace(" (", "_").replace(" {", "_")
            name = "".join(ch for ch in name.replace("/", "-") if ch.isalnum() or ch in "-_.=")
            save_grid(pairs, OUT / f"{name}_{scale}.png", ncols=8)
        print(f"{label}: {json.dumps(res)}")
    rows = []
    for label, entry in raw.items():
        # entries written before the column existed used the configs' defaults of that time
        sampling = entry.get("sampling") or LEGACY_SAMPLING.get(label.split(" ")[0], "-")
        split = "train" if entry.get("split") == "train" else "held-out pairs"  # earlier rows: heldout
        for scale, r in sorted(entry["results"].items()):
            what = (
                "image -> 256 pixel codes -> image" if label == "pixelvq" else f"{scale} ({r['tokens']} tok)"
            )
            rows.append(
                f"| {label} | {what} | {sampling} | {split} | {r['n']} | {r['fidelity']:.3f} "
                f"| {r['psnr']:.2f} | {r['ssim']:.3f} | {r['sec_per_image']:.3f} | {recovered(r)} |"
            )
    table = (
        "# De-tokenizers: TA-Tok ids -> pixels, per scale\n\n"
        "Command: `python experiments/detok_fidelity.py --ar FOLDER --diffusion FOLDER [--merge]` (models "
        f"and machines in the .json); unseen ShapeWorld scenes (seed {EVAL_SEED}, 1-4 objects), batch "
        f"{args.batch_size}; column 'split': 'held-out pairs' = `--split heldout` (the default: every "
        "scene holds a colour-shape pair no training scene has), 'train' = `--split train` (fresh scenes "
        "drawn like the training ones). Fidelity = the graded reconstruction equals the original scene "
        "(shape, colour, size, 3x3 position of every object); PSNR/SSIM on [0, 1]; seconds per image = "
        "tokenize + de-tokenize at that batch size, with each model's default sampling (column "
        "'sampling': AR guidance g and temperature t, 0 = greedy; diffusion Euler steps and guidance). "
        "Last column (rows measured since it exists): `world.grade.recovery` of the reconstructions, the "
        "fraction of original objects redrawn with the right shape, colour, size and 3x3 position, and "
        "of images with the right object count: where the fidelity is lost. "
        "Example sheets (input, reconstruction, ...): "
        "`detok_fidelity/<decoder>_<root>-<run>_scale<k>.png`.\n\n"
        "| decoder | scale | sampling | split | scenes | semantic fidelity | PSNR (dB) | SSIM | s / image "
        "| recovered shape / colour / size / position / count |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(table)
    write_keeping_notes(OUT.with_suffix(".md"), table)
    OUT.with_suffix(".json").write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
