"""De-tokenizers per TA-Tok scale: semantic fidelity, PSNR/SSIM and speed on held-out scenes.

Reproduce (tiny presets, CPU; each step reuses the previous one's output):
    dialect train encoder --preset tiny && dialect train tatok --preset tiny
    dialect train pixelvq --preset tiny
    dialect train ardtok --preset tiny && dialect train difdtok --preset tiny
    python experiments/detok_fidelity.py --ar runs/tiny/ardtok/model --diffusion runs/tiny/difdtok/model

Writes experiments/results/detok_fidelity.md (and .json, and one example sheet per decoder and
scale under experiments/results/detok_fidelity/): for each decoder x scale on `--n` held-out
ShapeWorld scenes (heldout split: every scene holds an unseen colour-shape pair), semantic
fidelity (graded scene == original scene), PSNR, SSIM and seconds per image on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from dialect.cli.detok import load_detokenizer
from dialect.core.images import save_grid
from dialect.eval.recon import EVAL_SEED, evaluate_reconstruction, score_reconstructions
from dialect.world import WorldConfig

OUT = Path(__file__).parent / "results" / "detok_fidelity"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ar", default=None, help="AR-DTok folder (skip if not given)")
    ap.add_argument("--diffusion", default=None, help="Dif-DTok folder (skip if not given)")
    ap.add_argument("--n", type=int, default=500, help="held-out scenes per decoder and scale")
    ap.add_argument("--batch-size", type=int, default=50)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    rows, raw = [], {}
    for decoder, path in (("ar", args.ar), ("diffusion", args.diffusion)):
        if not path:
            continue
        model = load_detokenizer(decoder, path)
        if not rows:  # the pixel VQ alone: what a perfect de-tokenizer could reach (same codec)
            codec = lambda x, b, m=model: m.codec(x).clamp(-1, 1)  # noqa: E731
            row, _ = score_reconstructions(codec, WorldConfig(), args.n, args.batch_size, desc="pixel VQ")
            raw["pixelvq"] = row
            rows.append(
                f"| pixel VQ alone (upper bound) | image -> 256 pixel codes | {row['fidelity']:.3f} "
                f"| {row['psnr']:.2f} | {row['ssim']:.3f} | {row['sec_per_image']:.3f} |"
            )
        res, examples = evaluate_reconstruction(model, WorldConfig(), n=args.n, batch_size=args.batch_size)
        raw[decoder] = {"model": path, "results": res}
        for scale, r in res.items():
            rows.append(
                f"| {decoder} | {scale} ({r['tokens']} tok) | {r['fidelity']:.3f} | {r['psnr']:.2f} "
                f"| {r['ssim']:.3f} | {r['sec_per_image']:.3f} |"
            )
            originals, recons = examples[scale]
            pairs = np.stack([originals[:16], recons[:16]], axis=1).reshape(-1, *originals.shape[1:])
            save_grid(pairs, OUT / f"{decoder}_{scale}.png", ncols=8)
        print(f"{decoder}: {json.dumps(res)}")
    cmd = "python experiments/detok_fidelity.py" + "".join(
        f" --{k} {v}" for k, v in (("ar", args.ar), ("diffusion", args.diffusion)) if v
    )
    table = (
        "# De-tokenizers: TA-Tok ids -> pixels, per scale\n\n"
        f"Command: `{cmd}`; {args.n} held-out ShapeWorld scenes per row (split heldout, seed {EVAL_SEED}, "
        f"1-4 objects), batch {args.batch_size}, {torch.get_num_threads()} CPU threads "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}. Fidelity = the graded "
        "reconstruction equals the original scene (shape, colour, size, 3x3 position of every object); "
        "PSNR/SSIM on [0, 1]; seconds per image = tokenize + de-tokenize at that batch size. Example sheets "
        "(input, reconstruction, ...): `detok_fidelity/<decoder>_scale<k>.png`.\n\n"
        "| decoder | scale | semantic fidelity | PSNR (dB) | SSIM | s / image |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".md").write_text(table)
    OUT.with_suffix(".json").write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
