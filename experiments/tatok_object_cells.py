"""What do TA-Tok tokens keep of the *objects*? Per-object probes at the object's grid cell.

ShapeWorld images are mostly background, so feature cosine and whole-image probes are dominated
by it. This script looks only at the grid cell under each object's centre, on multi-object scenes
(1-4 objects, train split, fresh seed), and reports for each TA-Tok folder:
- how many distinct codes the tokenizer uses at object cells, and overall (finest scale);
- at the *empty* cells (no object pixel in the cell): how many distinct codes they take, how many
  codes lie within tau = 0.03 (the stochastic sampling's temperature) of the best one and the gap
  between the best two similarities (near-ties make the argmax code an accident of tiny feature
  changes), and, on Edit-mini's source/target pairs, how often a cell keeps its code when nothing
  within two cells of it changed (what an LM editing the image has to copy);
- linear-probe accuracy (eval.probe, 75/25 split) of shape, colour and size from the teacher's
  feature at that cell (the upper bound of what the tokens can keep), from the features decoded
  from the tokens at every scale, and from the raw finest codes (the cell's code alone and the 3x3
  block of codes around it: what an LM reading the token ids has before its own layers mix them).

    python experiments/tatok_object_cells.py runs/tiny/tatok/model runs/tiny/tatok-stoch/model ...
Writes experiments/results/tatok_object_cells.{md,json} (`--merge` keeps earlier folders' rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from dialect.core.images import to_tensor
from dialect.detok.diffusion import foreground_mask
from dialect.eval.generation import EDIT_SEED, edit_items
from dialect.eval.probe import linear_probe
from dialect.tokenizers.tatok import TATok
from dialect.world import WorldConfig, make_example, render
from dialect.world.scene import SHAPES, SIZES

try:
    from experiments.notes import write_keeping_notes
except ImportError:  # run as a script from the repo root
    from notes import write_keeping_notes

OUT = Path(__file__).parent / "results" / "tatok_object_cells"
SEED = 77
NEAR = 0.03  # "near-tie": within the paper's sampling temperature of the best similarity
EDITS = 200  # Edit-mini pairs for the code-kept rate


@torch.no_grad()
def background_stats(tat: TATok, x: torch.Tensor, world: WorldConfig) -> dict:
    """Near-ties and code stability at empty cells (finest scale); see the module docstring."""
    g = tat.grid
    empty = foreground_mask(x, g).flatten(1) == 0  # (B, g*g): no object pixel in the cell
    z = torch.cat([tat._pre_quant(tat.teacher_features(x[i : i + 100]), 0) for i in range(0, len(x), 100)])
    sim = z[empty] @ tat.quantizer.codebook.codes().T  # (n_empty, K)
    top = sim.topk(2, dim=-1).values
    items = edit_items(EDITS, EDIT_SEED, world)
    src = torch.stack([to_tensor(ex["image"]) for ex, _ in items])
    tgt = torch.stack([to_tensor(render(e["target"], world)) for _, e in items])
    changed = F.adaptive_max_pool2d(((src - tgt).abs().amax(1, keepdim=True) > 0.05).float(), g)
    calm = (F.max_pool2d(changed, 5, stride=1, padding=2)[:, 0] == 0).flatten(1)  # (B, g*g)
    kept = tat.encode_ids(src, 0) == tat.encode_ids(tgt, 0)
    return {
        "empty_cells": int(empty.sum()),
        "codes_at_empty": int(sim.argmax(-1).unique().numel()),
        "near_ties": float((sim > top[:, :1] - NEAR).sum(-1).float().mean()),
        "gap": float((top[:, 0] - top[:, 1]).median()),
        "kept_when_calm": float(kept[calm].float().mean()),
    }


@torch.no_grad()
def probe_folder(path: str, n: int) -> dict:
    tat = TATok.from_pretrained(path).eval()
    world = WorldConfig()
    exs = [make_example(i, SEED, world, "train", with_edits=False) for i in range(n)]
    x = torch.stack([to_tensor(e["image"]) for e in exs])
    chunks = range(0, n, 100)
    feats = {"teacher": torch.cat([tat.teacher_features(x[i : i + 100]) for i in chunks])}
    for k in range(tat.config.num_scales):
        dec = [tat.decode_ids(tat.encode_ids(x[i : i + 100], k), k) for i in chunks]
        feats[f"tokens, scale {k} ({tat.num_tokens(k)} tok)"] = torch.cat(dec).float()
    ids0 = torch.cat([tat.encode_ids(x[i : i + 100], 0) for i in chunks])
    g = tat.grid
    # What the LM reads before any mixing: the finest code at the cell alone, and the 3x3 block of
    # codes around it (zero-padded at the border), as codebook vectors.
    codes = tat.quantizer.lookup(ids0).reshape(n, g, g, -1).float()
    feats["code alone, scale 0"] = codes
    padded = torch.nn.functional.pad(codes, (0, 0, 1, 1, 1, 1))
    feats["codes 3x3, scale 0"] = torch.cat(
        [padded[:, dy : dy + g, dx : dx + g] for dy in range(3) for dx in range(3)], dim=-1
    )
    rows = [
        (b, min(int(o.y * g), g - 1), min(int(o.x * g), g - 1),
         SHAPES.index(o.shape), world.colors.index(o.color), SIZES.index(o.size))
        for b, e in enumerate(exs) for o in e["scene"].objects
    ]  # fmt: skip
    r = torch.tensor(rows)
    cut = int(0.75 * len(r))
    out = {
        "objects": len(r),
        "codes_at_objects": int(ids0[r[:, 0], r[:, 1] * g + r[:, 2]].unique().numel()),
        "codes_overall": int(ids0.unique().numel()),
        "probes": {},
        "background": background_stats(tat, x, world),
    }
    for name, f in feats.items():
        cell = f[r[:, 0], r[:, 1], r[:, 2]]
        out["probes"][name] = {
            attr: linear_probe(cell[:cut], r[:cut, j], cell[cut:], r[cut:, j])
            for j, attr in ((3, "shape"), (4, "color"), (5, "size"))
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="TA-Tok folders")
    ap.add_argument("--n", type=int, default=1500, help="scenes (about 2.5 objects each)")
    ap.add_argument("--merge", action="store_true", help="keep the other folders' rows of the last run")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    old = OUT.with_suffix(".json")
    results = json.loads(old.read_text()) if args.merge and old.is_file() else {}
    results.update({m: probe_folder(m, args.n) for m in args.models})
    lines = [
        "# TA-Tok at the objects: distinct codes and per-object probes at the object's grid cell",
        "",
        f"Command: `python experiments/tatok_object_cells.py {' '.join(results)}`; {args.n} fresh "
        f"scenes (train split, seed {SEED}, 1-4 objects); linear probes on 75% of the objects, "
        "accuracy on the other 25% (chance: shape 0.20, colour 0.17, size 0.50).",
        "",
        "| TA-Tok | codes at objects / overall (finest) | features | shape | colour | size |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in results.items():
        for name, p in r["probes"].items():
            codes = f"{r['codes_at_objects']} / {r['codes_overall']}" if name == "teacher" else ""
            lines.append(
                f"| {m} | {codes} | {name} | {p['shape']:.3f} | {p['color']:.3f} | {p['size']:.3f} |"
            )
    lines += [
        "",
        f"Empty cells (finest scale, the same scenes): distinct codes there, codes within {NEAR} of the "
        "best similarity (mean), median gap between the best two; and on Edit-mini's first "
        f"{EDITS} train-split source/target pairs, the share of cells that keep their code when no "
        "pixel within two cells of them changed.",
        "",
        "| TA-Tok | empty cells | distinct codes there | codes within 0.03 of the best | best-two gap "
        "| code kept where nothing near changed |",
        "|---|---|---|---|---|---|",
    ]
    for m, r in results.items():
        if "background" in r:
            b = r["background"]
            lines.append(
                f"| {m} | {b['empty_cells']} | {b['codes_at_empty']} | {b['near_ties']:.1f} | "
                f"{b['gap']:.4f} | {b['kept_when_calm']:.3f} |"
            )
    write_keeping_notes(OUT.with_suffix(".md"), "\n".join(lines))
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
