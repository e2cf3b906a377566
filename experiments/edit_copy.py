"""Does the LM edit its input image or draw a new one? Edit codes vs the source's and the target's.

For Edit-mini's first `--n` train-split edits (its seed and instructions), the LM writes the
edited image's TA-Tok codes (finest scale, default sampling), and this compares them position by
position with the TA-Tok codes of the source image and of the rendered target; then it draws them
with Dif-DTok and grades the result per edit type: edited right, left unchanged (equal to the
source scene), and what the decoder makes of the target's own codes (the ceiling the decoder
leaves), plus the per-object recovery of the outputs against the targets. The same sources,
asked to be redrawn (the i2i task), show whether the LM can copy an image at all.

With `--margins`, first how the edits' targets tokenize when anchored to their sources
(`TATok.encode_ids(anchor=...)`, `tasks.ti2i_anchor`): per margin, how often a target code equals
the source's at 8x8-pixel cells the edit leaves untouched and at cells it changes, and how many
targets Dif-DTok redraws right from those codes.

    python experiments/edit_copy.py [MODEL ...] [--n 100] [--margins 0 0.05 0.1 0.2]

MODEL: Dialect model folders (default: the shipped model). Results: experiments/results/vqa_binding.md,
experiments/results/edit_anchor.md.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from dialect.core.images import to_tensor, to_uint8
from dialect.eval.generation import EDIT_SEED, edit_items
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import REQUESTS, image_prompt
from dialect.world import WorldConfig, render
from dialect.world.grade import parse_image, recovery, scene_equal


def edits(d: Dialect, n: int) -> tuple[WorldConfig, list, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edit-mini's first n train-split edits -> (world, items, sources (n, 3, H, W), rendered
    targets (n, 3, H, W), the sources' finest TA-Tok codes (n, 64))."""
    world = WorldConfig(size=d.image_size)
    items = edit_items(n, EDIT_SEED, world)
    src = torch.stack([to_tensor(ex["image"]) for ex, _ in items])
    tgt = torch.stack([to_tensor(render(e["target"], world)) for _, e in items])
    return world, items, src, tgt, d.tar.encode_images(src, 0).cpu()


@torch.no_grad()
def diagnose(d: Dialect, n: int) -> None:
    world, items, src, tgt, src_codes = edits(d, n)
    tar = d.tar
    tgt_codes = tar.encode_images(tgt, 0).cpu()
    spans = tar.image_spans(src)
    last = tar.config.image_last
    turns = [image_prompt(s, e["instruction"], last) for s, (_, e) in zip(spans, items, strict=True)]
    convs = [[("user", t)] for t in turns]
    gen = torch.Generator().manual_seed(EDIT_SEED)
    out = tar.generate_codes(convs, 0, d.image_sampling(None, None, None), gen).cpu()
    print(
        f"codes equal, per position: output = target {(out == tgt_codes).float().mean():.3f}, "
        f"output = source {(out == src_codes).float().mean():.3f} "
        f"(source = target {(src_codes == tgt_codes).float().mean():.3f})"
    )
    margin = tar.config.tasks.ti2i_anchor
    if margin > 0:  # the targets as this model was trained on them
        anchored = tar.encode_images(tgt, 0, src_codes, margin).cpu()
        print(
            f"  anchored targets (ti2i_anchor {margin}): output = anchored target "
            f"{(out == anchored).float().mean():.3f} (source = anchored target "
            f"{(src_codes == anchored).float().mean():.3f})"
        )
    # can the LM copy at all? the same sources, asked to redraw them (the i2i task)
    redraw = [[("user", image_prompt(s, REQUESTS["redraw"][0], last))] for s in spans]
    copy = tar.generate_codes(redraw, 0, d.image_sampling(None, None, None), gen).cpu()
    copied = [parse_image(im, world) for im in to_uint8(d.decode(copy, 0, "diffusion", 0))]
    copied_right = sum(scene_equal(p, ex["scene"]) for (ex, _), p in zip(items, copied, strict=True))
    print(
        f"  redraw requests: output = source codes {(copy == src_codes).float().mean():.3f}, "
        f"scene redrawn right {copied_right / n:.2f}"
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
    print(f"  edits right: {sum(ok.values()) / n:.3f}, left unchanged: {sum(same.values()) / n:.3f}")
    for t in total:
        print(
            f"  {t:8s} n={total[t]:3d}  edited right {ok[t] / total[t]:.2f}  unchanged "
            f"{same[t] / total[t]:.2f}  target's own codes redrawn right {top[t] / total[t]:.2f}"
        )
    rec = recovery([e["target"] for _, e in items], drawn)
    print("  recovery of the outputs against the targets:", {k: round(v, 2) for k, v in rec.items()})


@torch.no_grad()
def anchor_sweep(d: Dialect, n: int, margins: list[float]) -> None:
    world, items, src, tgt, src_codes = edits(d, n)
    tar = d.tar
    side = tar.tatok.scale_side(0)
    cell = d.image_size // side
    # a token's cell changed when any of its pixels did
    changed = (src - tgt).abs().sum(1) > 0  # (B, H, W)
    changed = changed.view(-1, side, cell, side, cell).any(4).any(2).flatten(1)  # (B, n)
    print(f"cells changed by the edit: {changed.float().mean():.3f}")
    for margin in margins:
        codes = tar.encode_images(tgt, 0, src_codes, margin).cpu()
        same = codes == src_codes
        drawn = [parse_image(im, world) for im in to_uint8(d.decode(codes, 0, "diffusion", 0))]
        right = sum(scene_equal(p, e["target"]) for (_, e), p in zip(items, drawn, strict=True))
        kept, moved = same[~changed].float().mean(), same[changed].float().mean()
        print(
            f"  margin {margin:<5}: target code = source code at unchanged cells {kept:.3f}, "
            f"at changed cells {moved:.3f}; targets redrawn right {right / n:.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=[None], help="model folders (default: the shipped one)")
    ap.add_argument("--n", type=int, default=100, help="edits")
    ap.add_argument("--margins", type=float, nargs="*", default=[], help="anchoring margins to sweep first")
    args = ap.parse_args()
    for path in args.models:
        print(f"== {path or 'shipped model'}")
        d = Dialect.from_pretrained(path)
        if args.margins:
            anchor_sweep(d, args.n, args.margins)
        diagnose(d, args.n)


if __name__ == "__main__":
    main()
