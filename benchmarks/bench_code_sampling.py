"""Stochastic code sampling in TA-Tok training: `torch.multinomial` vs inverse-CDF `sample_rows`.

TA-Tok trains with codes drawn from softmax(similarity / tau) (the paper's tau = 0.03), one draw per
token over the whole codebook. Both samplers draw from the same distribution; this measures, side
by side in one run, (1) the draw alone on the finest scale's shape in a tiny-preset batch (32
images x 64 tokens = 2,048 rows x 4,096 codes) and (2) a whole TA-Tok training step of the shipped
model with each sampler, at each scale (a training step draws one scale; here it is pinned) (the
`bench_train.py` step: forward, backward, AdamW, fp32, batch 32).

    python benchmarks/bench_code_sampling.py [--repeats 5] [--threads N] [--write]
"""

from __future__ import annotations

import statistics
import time

import torch

import dialect.quant.vq as vq_mod

try:
    from benchmarks.bench_train import images, step_fn, trainable
    from benchmarks.common import parser, report, start
except ImportError:  # run as a script from the repo root
    from bench_train import images, step_fn, trainable
    from common import parser, report, start


def multinomial(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sampler `sample_rows` replaced: an exponential variate per entry (N x K) on the CPU."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


SAMPLERS = {"torch.multinomial": multinomial, "sample_rows (inverse CDF)": vq_mod.sample_rows}


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run in turn `repeats` times after one warm-up each."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = parser(__doc__, repeats=5)
    args = ap.parse_args()
    load = start(args)
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(2048, 4096, generator=g) * 0.1  # cosine-like similarities
    probs = torch.softmax(sim / 0.03, dim=-1)
    draw = interleaved({k: (lambda f=f: f(probs, g)) for k, f in SAMPLERS.items()}, args.repeats)

    from dialect.unified.pipeline import Dialect

    tatok = trainable(Dialect.from_pretrained().tar.tatok).train()
    step, _ = step_fn(tatok, images(32))
    n_scales = len(tatok.config.scale_weights)

    def with_sampler(sampler):
        def run() -> None:
            vq_mod.sample_rows = sampler
            try:
                step()
            finally:
                vq_mod.sample_rows = SAMPLERS["sample_rows (inverse CDF)"]

        return run

    steps = {}
    for k in range(n_scales):  # pin the scale the step draws
        tatok.config.scale_weights = [float(i == k) for i in range(n_scales)]
        steps[k] = interleaved({name: with_sampler(f) for name, f in SAMPLERS.items()}, args.repeats)
    old, new = SAMPLERS
    tokens = [tatok.num_tokens(k) for k in range(n_scales)]
    head = " | ".join(f"step, scale {k} ({32 * t} rows) (s)" for k, t in enumerate(tokens))
    rows = [f"| sampler | draw 2,048 x 4,096 (ms) | {head} |", "|---" * (2 + n_scales) + "|"]
    rows += [
        f"| {name} | {draw[name] * 1e3:.1f} | " + " | ".join(f"{steps[k][name]:.3f}" for k in steps) + " |"
        for name in SAMPLERS
    ]
    ratios = ", ".join(f"scale {k} {steps[k][old] / steps[k][new]:.2f}x" for k in steps)
    note = (
        f"\nInverse CDF over multinomial: {draw[old] / draw[new]:.1f}x on the draw; on the whole TA-Tok "
        f"step {ratios}. Medians of {args.repeats} interleaved repeats after a warm-up; the step is "
        f"the shipped model's TA-Tok, fp32, batch 32. 1-minute load average at the start: {load:.1f}.\n"
    )
    report("Stochastic code sampling: multinomial vs inverse CDF", "\n".join(rows) + "\n" + note, args.write)


if __name__ == "__main__":
    main()
