"""End-to-end latency of the shipped default model on this CPU: `generate` per image for every
TA-Tok scale x de-tokenizer, and `caption` / `ask` per image, at batch 1 and batch 8; each as
loaded (eager decoding), after `Dialect.compile_decoding()` and after
`Dialect.compile_decoding(ahead_of_time=True)`, side by side.

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
    eager, compiled = Dialect.from_pretrained(), Dialect.from_pretrained().compile_decoding()
    aot = Dialect.from_pretrained().compile_decoding(ahead_of_time=True)
    scales = eager.tar.config.tatok.num_scales
    rows = [
        "| call | scale (tokens) | decoder | batch | s / image | compiled s / image "
        "| ahead-of-time s / image | eager / compiled | eager / ahead-of-time | compiled / ahead-of-time |",
        "|---" * 10 + "|",
    ]

    def row(call: str, scale: str, dec: str, b: int, fn) -> None:
        """Time fn(model) on the eager, the compiled and the ahead-of-time pipeline, side by side
        -> a table row."""
        secs = [median_seconds(lambda d=d: fn(d), args.repeats) / b for d in (eager, compiled, aot)]
        rows.append(
            f"| {call} | {scale} | {dec} | {b} | {secs[0]:.3f} | {secs[1]:.3f} | {secs[2]:.3f} "
            f"| {secs[0] / secs[1]:.2f}x | {secs[0] / secs[2]:.2f}x | {secs[1] / secs[2]:.2f}x |"
        )
        print(rows[-1], flush=True)

    for b in args.batches:
        for scale in range(scales):
            n_tok = eager.tar.tatok.scale_side(scale) ** 2
            for dec in eager.decoders:
                row(
                    "generate", f"{scale} ({n_tok})", dec, b,
                    lambda d, b=b, scale=scale, dec=dec: d.generate(PROMPT, n=b, scale=scale, decoder=dec),
                )  # fmt: skip
        world = WorldConfig(size=eager.image_size)
        imgs = [render(sample_scene(np.random.default_rng(i), world), world) for i in range(b)]
        understand = str(eager.tar.config.understand_scale)
        row("caption", understand, "-", b, lambda d, imgs=imgs: d.caption(imgs))
        row("ask", understand, "-", b, lambda d, imgs=imgs: d.ask(imgs, "what color is the circle?"))
    body = (
        "\n".join(rows) + f"\n\nShipped default model, prompt '{PROMPT}', default sampling, median of "
        f"{args.repeats} calls after a warm-up, per image. 'compiled': the same pipeline after "
        "`Dialect.compile_decoding()` (Tar's and AR-DTok's one-token decoding steps `torch.compile`d; its "
        "warm-up call compiles each new batch shape, seconds, untimed here); 'ahead-of-time': after "
        "`Dialect.compile_decoding(ahead_of_time=True)` (the same steps built by AOTInductor, "
        "`dialect.lm.aot`: one C++ build per LM and batch size in the warm-up, untimed). "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    report("End-to-end latency of the shipped model", body, args.write)


if __name__ == "__main__":
    main()
