"""Does the LM edit its input image or draw a new one? Edit codes vs the source's and the target's.

For Edit-mini's first `--n` train-split edits (its seed and instructions), the LM writes the
edited image's TA-Tok codes (finest scale, default sampling), and this compares them position by
position with the TA-Tok codes of the source image and of the rendered target; then it draws them
with Dif-DTok and grades the result per edit type: edited right, left unchanged (equal to the
source scene), and what the decoder makes of the target's own codes (the ceiling the decoder
leaves), plus the per-object recovery of the outputs against the targets.

    python experiments/edit_copy.py [MODEL ...] [--n 100]

MODEL: Dialect model folders (default: the shipped model). Results: experiments/results/vqa_binding.md.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from dialect.core.images import to_tensor, to_uint8
from dialect.eval.generation import EDIT_SEED, edit_items
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import edit_prompt
from dialect.world import WorldConfig, render
from dialect.world.grade import parse_image, recovery, scene_equal


@torch.no_grad()
def diagnose(d: Dialect, n: int) -> None:
    world = WorldConfig(size=d.image_size)
    items = edit_items(n, EDIT_SEED, world)
    tar = d.tar
    src = torch.stack([to_tensor(ex["image"]) for ex, _ in items])
    tgt = torch.stack([to_tensor(render(e["target"], world)) for _, e in items])
    src_codes, tgt_codes = tar.encode_images(src, 0).cpu(), tar.encode_images(tgt, 0).cpu()
    spans = tar.image_spans(src)
    last = tar.config.image_last
    turns = [edit_prompt(s, e["instruction"], last) for s, (_, e) in zip(spans, items, strict=True)]
    convs = [[("user", t)] for t in turns]
    gen = torch.Generator().manual_seed(EDIT_SEED)
    out = tar.generate_codes(convs, 0, d.image_sampling(None, None, None), gen).cpu()
    print(
        f"codes equal, per position: output = target {(out == tgt_codes).float().mean():.3f}, "
        f"output = source {(out == src_codes).float().mean():.3f} "
        f"(source = target {(src_codes == tgt_codes).float().mean():.3f})"
    )
    drawn = [parse_image(im, world) for im in to_uint8(d.decode(out, 0, "diffusion", 0))]
    ceiling = [parse_image(im, world) for im in to_uint8(d.decode(tgt_codes, 0, "diffusion", 0))]
    ok, same, top, total = Counter(), Counter(), Counter(), Counter()
    for (ex, e), p, q in zip(items, drawn, ceiling, strict=True):
        t = e["type"]
        total[t] += 1
        ok[t] += scene_equal(p, e["target"])
        same[t] += scene_equal(p, ex["scene"])
        top[t] += scene_equal(q, e["target"])
    for t in total:
        print(
            f"  {t:8s} n={total[t]:3d}  edited right {ok[t] / total[t]:.2f}  unchanged "
            f"{same[t] / total[t]:.2f}  target's own codes redrawn right {top[t] / total[t]:.2f}"
        )
    rec = recovery([e["target"] for _, e in items], drawn)
    print("  recovery of the outputs against the targets:", {k: round(v, 2) for k, v in rec.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=[None], help="model folders (default: the shipped one)")
    ap.add_argument("--n", type=int, default=100, help="edits")
    args = ap.parse_args()
    for path in args.models:
        print(f"== {path or 'shipped model'}")
        diagnose(Dialect.from_pretrained(path), args.n)


if __name__ == "__main__":
    main()
