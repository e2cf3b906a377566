"""End-to-end latency of the shipped default model on this CPU: `generate` per image for every
TA-Tok scale x de-tokenizer, and `caption` / `ask` per image, at batch 1 and batch 8.

Each number is the median wall time of `--repeats` calls after a warm-up call, divided by the
images in the call, with the library's default sampling (the paper's T = 1, top-p 0.95,
top-k 1200) and the shipped weights as loaded (bf16 weights are cast to fp32 on load when the
CPU has no native bf16).

    python benchmarks/bench_latency.py [--threads N] [--repeats 3] [--write]
"""

from __future__ import annotations

import numpy as np

from dialect.unified.pipeline import Dialect
from dialect.world import WorldConfig, render, sample_scene

try:
    from benchmarks.common import median_seconds, parser, report, start
except ImportError:  # run as a script from the repo root
    from common import median_seconds, parser, report, start

PROMPT = "a red circle to the left of a blue square"


def main() -> None:
    ap = parser(__doc__, repeats=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    load = start(args)
    d = Dialect.from_pretrained()
    scales = d.tar.config.tatok.num_scales
    rows = ["| call | scale (tokens) | decoder | batch | s / image |", "|---|---|---|---|---|"]
    for b in args.batches:
        for scale in range(scales):
            n_tok = d.tar.tatok.scale_side(scale) ** 2
            for dec in d.decoders:
                secs = median_seconds(
                    lambda b=b, scale=scale, dec=dec: d.generate(PROMPT, n=b, scale=scale, decoder=dec),
                    args.repeats,
                )
                rows.append(f"| generate | {scale} ({n_tok}) | {dec} | {b} | {secs / b:.3f} |")
                print(rows[-1], flush=True)
        world = WorldConfig(size=d.image_size)
        imgs = [render(sample_scene(np.random.default_rng(i), world), world) for i in range(b)]
        secs = median_seconds(lambda imgs=imgs: d.caption(imgs), args.repeats)
        rows.append(f"| caption | {d.tar.config.understand_scale} | - | {b} | {secs / b:.3f} |")
        secs = median_seconds(lambda imgs=imgs: d.ask(imgs, "what color is the circle?"), args.repeats)
        rows.append(f"| ask | {d.tar.config.understand_scale} | - | {b} | {secs / b:.3f} |")
        print("\n".join(rows[-2:]), flush=True)
    body = (
        "\n".join(rows) + f"\n\nShipped default model, prompt '{PROMPT}', default sampling, median of "
        f"{args.repeats} calls after a warm-up, per image. 1-minute load average at the start: {load:.1f}.\n"
    )
    report("End-to-end latency of the shipped model", body, args.write)


if __name__ == "__main__":
    main()
