"""Training steps with and without `train.compile` (every transformer layer `torch.compile`d,
`dialect.nn.compile`), side by side in one run.

For each tiny model with transformer layers, two copies with the same weights take the same
training step (forward, backward, AdamW; bf16 autocast where the trainer would use it, i.e. on a
CPU with native bf16, else fp32) on the same batch, interleaved; every step reseeds the RNG so both
draw the same timesteps, scales and dropouts. Reported: the median step time of each, their ratio,
the compiled copy's first steps (the compile cost a run pays once), and the loss of the last step of
each (equal up to fused-kernel rounding).

Models: the shipped model's Tar LM (its task mix, batch 32), Dif-DTok and AR-DTok (batch 16),
TA-Tok (batch 32) and a fresh tiny teacher (batch 64), as `bench_train.py` builds them.

    python benchmarks/bench_compile.py [--threads N] [--repeats 5] [--write]
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from dialect.nn.compile import compile_layers, cpp_compiler
from dialect.train.precision import autocast, resolve_precision
from dialect.unified.pipeline import Dialect

try:
    from benchmarks.bench_train import images, models, step_fn, trainable
    from benchmarks.common import parser, report, start
except ImportError:  # run as a script from the repo root
    from bench_train import images, models, step_fn, trainable
    from common import parser, report, start

WARMUP_STEPS = 3  # the compiled copy's first steps: tracing and compiling each kind of call


def main() -> None:
    ap = parser(__doc__, repeats=5)
    args = ap.parse_args()
    if cpp_compiler() is None:
        raise SystemExit("torch.compile on the CPU needs a C++ compiler (c++, g++ or clang++)")
    load = start(args)
    cpu = torch.device("cpu")
    precision = resolve_precision("auto", cpu)
    candidates = models(32)
    candidates["Dif-DTok"] = (trainable(Dialect.from_pretrained().decoders["diffusion"]), images(16))
    rows = [
        "| model | compiled layers | eager s / step | compiled s / step | eager / compiled "
        "| compile: first steps s | loss eager | loss compiled |",
        "|---" * 8 + "|",
    ]
    for name, (model, batch) in candidates.items():
        twin = copy.deepcopy(model)
        n = compile_layers(twin)
        if n == 0:  # nothing to compile (the pixel VQ is convolutional)
            continue
        steps = {}
        for key, m in (("eager", model), ("compiled", twin)):
            m.train()
            step, _ = step_fn(m, batch)

            def timed(step=step) -> tuple[float, float]:
                t0 = time.perf_counter()
                with autocast(precision, cpu):
                    loss = step()
                return time.perf_counter() - t0, loss

            steps[key] = timed
        t0 = time.perf_counter()
        for _ in range(WARMUP_STEPS):
            steps["compiled"]()
        first = time.perf_counter() - t0
        for _ in range(WARMUP_STEPS):  # the same optimizer history on both copies
            steps["eager"]()
        secs, losses = {k: [] for k in steps}, {}
        for _ in range(args.repeats):
            for k, timed in steps.items():
                s, losses[k] = timed()
                secs[k].append(s)
        eager, compiled = statistics.median(secs["eager"]), statistics.median(secs["compiled"])
        rows.append(
            f"| {name} | {n} | {eager:.3f} | {compiled:.3f} | {eager / compiled:.2f}x | {first:.0f} "
            f"| {losses['eager']:.4f} | {losses['compiled']:.4f} |"
        )
        print(rows[-1], flush=True)
    body = (
        "\n".join(rows) + f"\n\nOne training step (forward, backward, AdamW) at {precision} "
        "(the trainer's `precision=auto` on this CPU), the same batch and RNG state each time; medians "
        f"of {args.repeats} interleaved steps after {WARMUP_STEPS} warm-up steps of each copy (the "
        "compiled copy's, the compile cost, are the 'first steps' column; inductor's on-disk cache "
        "may shorten them on a rerun). Compiled layers: the transformer layers "
        "`dialect.nn.compile` compiles, frozen ones included (Tar's TA-Tok, the de-tokenizers' "
        "conditions). The loss columns: the last timed step's; both copies took the same steps on "
        f"the same batch, so they differ by rounding only. 1-minute load average at the start: {load:.1f}.\n"
    )
    report("Training steps: eager vs compiled transformer layers (train.compile)", body, args.write)


if __name__ == "__main__":
    main()
