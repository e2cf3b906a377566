"""Compiled decoding steps: the fused kernels against the library calls they replaced, side by side.

`DecoderLM.compile_decoding()` traces one step (batch 1 by default, `--batch B` for B rows: the
row-dot covers up to `ROWDOT_ROWS` rows, so its threshold can be checked). Three choices inside
it are switchable:
- the products of one or two rows: inductor's row-dot loops over each (out, in) weight
  (`dialect.nn.linear.ROWDOT_ROWS = 2`, raised to B for `--batch B`) or the BLAS on column slabs
  (`ROWDOT_ROWS = 0`);
- the single query's attention: two fused reductions (`dialect.nn.blocks.ONE_QUERY_ATTENTION`) or
  SDPA's flash kernel, an external call;
- whether a row-dot reads its input from a stored buffer (`dialect.nn.linear.STORE_ROWDOT_INPUT`)
  or recomputes the norm before it inside the loop, for every output row.
A setting runs the steps of the fastest one inside `DecoderLM.decoding_steps`, the scope
`generate` gives its loop, where dynamo checks its guards at the first step only, and the last one
runs that step built ahead of time by AOTInductor (`compile_decoding(ahead_of_time=True)`).
One model with every setting compiled (dynamo guards on the switches, so each setting replays its
own trace) decodes the same greedy steps in interleaved repeats, on the `bench_decode.py` model.
Reported: time per step for each setting and their ratio at each length, and whether the greedy
tokens agree.

    python benchmarks/bench_decode_kernels.py [--config llama20m] [--batch 1] [--repeats 6] [--write]
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

import dialect.nn.blocks as blocks
import dialect.nn.linear as linear
from dialect.lm import DecoderLM
from dialect.lm.aot import AotDecodingSteps

try:
    from benchmarks.bench_decode import CONFIGS, decode_parser
    from benchmarks.common import report, start
except ImportError:  # run as a script from the repo root
    from bench_decode import CONFIGS, decode_parser
    from common import report, start

SETTINGS = {  # name -> (ROWDOT_ROWS, ONE_QUERY_ATTENTION, STORE_ROWDOT_INPUT, in decoding_steps)
    "BLAS slabs + SDPA": (0, False, False, False),
    "BLAS slabs + fused attention": (0, True, False, False),
    "row-dot + SDPA": (2, False, False, False),
    "row-dot + fused attention": (2, True, False, False),
    "stored row-dot inputs + fused attention": (2, True, True, False),
    "the same, guards skipped after the first step": (2, True, True, True),
}
AHEAD_OF_TIME = "the same graph built ahead of time (AOTInductor)"  # the last setting's switches


@contextlib.contextmanager
def setting(rowdot_rows: int, one_query: bool, store_input: bool, scoped: bool, batch: int = 1):
    """The kernel switches of one setting (`scoped` is for `steps`). A row-dot setting covers at
    least `batch` rows, so that `--batch` beyond the default ROWDOT_ROWS measures the row-dot
    there too."""
    saved = linear.ROWDOT_ROWS, blocks.ONE_QUERY_ATTENTION, linear.STORE_ROWDOT_INPUT
    linear.ROWDOT_ROWS = max(rowdot_rows, batch) if rowdot_rows else 0
    linear.STORE_ROWDOT_INPUT = store_input
    blocks.ONE_QUERY_ATTENTION = one_query
    try:
        yield
    finally:
        linear.ROWDOT_ROWS, blocks.ONE_QUERY_ATTENTION, linear.STORE_ROWDOT_INPUT = saved


def steps(
    model: DecoderLM, length: int, n: int, scoped: bool = False, batch: int = 1
) -> tuple[float, torch.Tensor]:
    """Prefill L - n random ids in each of `batch` rows (untimed), then time n - 2 greedy steps
    after 2 untimed ones -> (seconds per step, the greedy tokens (batch * n,)); `scoped`: inside
    `model.decoding_steps`, as `generate` runs them (dynamo's guards skipped after the first
    step)."""
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(0, model.config.vocab_size, (batch, length - n), generator=g)
    caches = model.new_caches(batch, length)
    logits = model(ids, caches=caches, last_only=True)[:, -1]
    tokens, t0 = [], 0.0
    with model.decoding_steps(caches) if scoped else contextlib.nullcontext():
        for i in range(n):
            if i == 2:
                t0 = time.perf_counter()
            tok = logits.argmax(-1, keepdim=True)
            tokens.append(tok)
            logits = model(tok, caches=caches, start=length - n + i)[:, -1]
    return (time.perf_counter() - t0) / (n - 2), torch.cat(tokens, dim=1).flatten()


def main() -> None:
    ap = decode_parser(__doc__, repeats=6)
    ap.add_argument(
        "--batch", type=int, default=1,
        help=f"rows decoded at once (the row-dot covers up to ROWDOT_ROWS = {linear.ROWDOT_ROWS})",
    )  # fmt: skip
    args = ap.parse_args()
    if args.batch < 1:
        ap.error(f"--batch must be at least 1, got {args.batch}")
    load = start(args)
    torch.manual_seed(0)
    model = DecoderLM(CONFIGS[args.config]).eval().compile_decoding()
    # the ahead-of-time steps of the model, switched on for their setting alone (`model._aot`)
    aot = AotDecodingSteps(model)
    settings = {**SETTINGS, AHEAD_OF_TIME: SETTINGS["the same, guards skipped after the first step"]}
    runs = [(length, min(args.steps, length // 2)) for length in args.lengths]
    times = {(name, length): [] for name in settings for length, _ in runs}
    tokens = {}

    def run(name: str, length: int, n: int) -> tuple[float, torch.Tensor]:
        switches = settings[name]
        model._aot = aot if name == AHEAD_OF_TIME else None
        with setting(*switches, batch=args.batch):
            return steps(model, length, n, scoped=switches[-1], batch=args.batch)

    with torch.inference_mode():
        t0 = time.perf_counter()
        for length, n in runs:  # compiles each setting for each cache shape
            for name in settings:
                run(name, length, n)
        compile_s = time.perf_counter() - t0
        for _ in range(args.repeats):
            for length, n in runs:
                for name in settings:
                    t, tokens[name, length] = run(name, length, n)
                    times[name, length].append(t)
    names = list(settings)
    base = names[0]
    rows = [
        "| L | n | " + " | ".join(f"{name} ms / step" for name in names) + " | "
        + " | ".join(f"{base} / {name}" for name in names[1:]) + " | same tokens |",
        "|---" * (3 + 2 * len(names) - 1) + "|",
    ]  # fmt: skip
    for length, n in runs:
        med = {name: statistics.median(times[name, length]) for name in names}
        same = all(torch.equal(tokens[base, length], tokens[name, length]) for name in names)
        rows.append(
            f"| {length} | {n} | " + " | ".join(f"{med[name] * 1e3:.2f}" for name in names) + " | "
            + " | ".join(f"{med[base] / med[name]:.2f}x" for name in names[1:])
            + f" | {'yes' if same else 'NO'} |"
        )  # fmt: skip
        print(rows[-1], flush=True)
    c = model.config
    note = (
        f"\nDecoderLM '{args.config}' (dim {c.dim}, depth {c.depth}, heads {c.heads}, vocab {c.vocab_size}), "
        f"fp32, batch {args.batch}, greedy, `compile_decoding()`; a prompt of L - n random ids (in each "
        "row), then n steps, the "
        f"first 2 untimed; median of {args.repeats} interleaved repeats after compiling every setting for "
        f"every cache shape ({compile_s:.0f} s). Settings: `dialect.nn.linear.ROWDOT_ROWS` (0: the BLAS "
        f"on column slabs, {max(2, args.batch)}: inductor's row-dot loops) and "
        "`dialect.nn.blocks.ONE_QUERY_ATTENTION` "
        "(SDPA's flash kernel, or two fused reductions) and `dialect.nn.linear.STORE_ROWDOT_INPUT` "
        "(the row-dot's input written once, or its producer recomputed in the loop); 'guards skipped' "
        "runs its steps inside `DecoderLM.decoding_steps`, as `generate` does (dynamo's guards skipped "
        "after the first step); 'built ahead of time': the same switches, the step exported and built "
        "by AOTInductor into a library run without dynamo or inductor's Python wrapper "
        "(`compile_decoding(ahead_of_time=True)`, `dialect.lm.aot`). 'same tokens': "
        f"every setting decoded the same greedy tokens. 1-minute load average at the start: {load:.1f}.\n"
    )
    rows_note = "" if args.batch == 1 else f", batch {args.batch}"
    title = f"Compiled decoding steps: fused kernels vs library calls ({args.config}{rows_note})"
    report(title, "\n".join(rows) + "\n" + note, args.write)


if __name__ == "__main__":
    main()
