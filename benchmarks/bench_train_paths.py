"""bf16 training steps on the CPU: which attention kernel, and the LM head at the loss rows only.

Two choices in the training path are measured here, side by side in one run:

1. `nn.blocks.attention` sends bf16 training steps over at most `MATH_ATTENTION_MAX_LEN` positions
   to SDPA's math path instead of the fused flash kernel. Table 1 times one attention forward +
   backward (batch 16, 4 heads, bf16) on both kernels over sequence lengths, the crossover that
   threshold is read from.
2. Tar's loss asks its LM for the logits of the loss positions only (`forward(select=...)`), so the
   head and the softmax skip the prompt and input-image rows. Table 2 times whole training steps
   (forward, backward, AdamW; bf16 autocast as the trainer runs them) of the shipped model's Tar LM
   (its task mix, batch 32) and of Dif-DTok (batch 16): the flash kernel at every length
   (`MATH_ATTENTION_MAX_LEN = 0`) vs the chosen kernel, and for Tar also the head over every
   position with the loss rows taken afterwards (the forward wrapped to ignore `select`: the head
   matmul's saving, while the softmax already runs on the selected rows in both), and the top
   block over every position with the head at the loss rows (the stack wrapped to ignore `rows`:
   the saving of running the top block's projection and MLP at the loss rows only).

    python benchmarks/bench_train_paths.py [--threads N] [--repeats 5] [--write]
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import dialect.nn.blocks as blocks
from dialect.data.sample import collate
from dialect.lm.decoding import select_rows
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import ShapeWorldTasks
from dialect.world import WorldConfig

try:
    from benchmarks.bench_train import images, step_fn, trainable
    from benchmarks.common import median_seconds, parser, report, start
except ImportError:  # run as a script from the repo root
    from bench_train import images, step_fn, trainable
    from common import median_seconds, parser, report, start

LENGTHS = (64, 128, 160, 192, 256, 512)


def attention_ms(length: int, head_dim: int, causal: bool, backend: SDPBackend, repeats: int) -> float:
    q, k, v = (
        torch.randn(16, 4, length, head_dim, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)
    )

    def run() -> None:
        with sdpa_kernel(backend):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.float().sum().backward()

    return median_seconds(run, repeats) * 1e3


@contextlib.contextmanager
def flash_everywhere():
    """The attention kernel as before the math-path choice: SDPA's default at every length."""
    saved = blocks.MATH_ATTENTION_MAX_LEN
    blocks.MATH_ATTENTION_MAX_LEN = 0
    try:
        yield
    finally:
        blocks.MATH_ATTENTION_MAX_LEN = saved


@contextlib.contextmanager
def head_everywhere(lm: torch.nn.Module):
    """The LM's head over every position, the loss rows taken from its output afterwards."""
    forward = lm.forward

    def full(*args, select=None, **kwargs):
        return select_rows(forward(*args, **kwargs), select)

    lm.forward = full
    try:
        yield
    finally:
        del lm.forward


@contextlib.contextmanager
def top_block_everywhere(lm: torch.nn.Module):
    """The LM's top block over every position, the loss rows gathered after the final norm."""
    forward = lm.stack.forward

    def full(x, *args, rows=None, **kwargs):
        out = forward(x, *args, **kwargs)
        return out if rows is None else out.flatten(0, 1).index_select(0, rows)

    lm.stack.forward = full
    try:
        yield
    finally:
        del lm.stack.forward


def bf16_step(model: torch.nn.Module, batch: dict):
    step, _ = step_fn(model, batch)

    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step()

    return run


def main() -> None:
    ap = parser(__doc__, repeats=5)
    args = ap.parse_args()
    load = start(args)
    rows = [
        "| positions | flash, head_dim 32, full (ms) | math (ms) | flash / math "
        "| flash, head_dim 64, causal (ms) | math (ms) | flash / math | path taken |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in LENGTHS:
        cells = []
        for head_dim, causal in ((32, False), (64, True)):
            flash = attention_ms(n, head_dim, causal, SDPBackend.FLASH_ATTENTION, args.repeats)
            math = attention_ms(n, head_dim, causal, SDPBackend.MATH, args.repeats)
            cells.append(f"{flash:.1f} | {math:.1f} | {flash / math:.2f}")
        taken = "math" if n <= blocks.MATH_ATTENTION_MAX_LEN else "flash"
        rows.append(f"| {n} | {' | '.join(cells)} | {taken} |")
        print(rows[-1], flush=True)

    d = Dialect.from_pretrained()
    tar = trainable(d.tar).train()
    tasks = ShapeWorldTasks(
        tar.config.tasks, WorldConfig(size=64), tar.config.tatok.num_scales, seed=0, length=32
    )
    tar_batch = collate([tasks[i] for i in range(32)])
    dif = trainable(d.decoders["diffusion"]).train()
    steps = [
        "| model | flash everywhere, head at every position (s) | flash everywhere (s) "
        "| chosen kernel, top block at every position (s) | chosen kernel (s) "
        "| speed-up, chosen vs first column | top block at loss rows: speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model, batch, lm in (
        ("Tar LM (batch 32)", tar, tar_batch, tar.lm),
        ("Dif-DTok (batch 16)", dif, images(16), None),
    ):
        run = bf16_step(model, batch)
        times = {}
        for _ in range(2):  # interleaved: the machine's drift hits every variant alike
            if lm is not None:
                with flash_everywhere(), head_everywhere(lm):
                    times.setdefault("both", []).append(median_seconds(run, args.repeats))
                with top_block_everywhere(lm):
                    times.setdefault("top", []).append(median_seconds(run, args.repeats))
            with flash_everywhere():
                times.setdefault("flash", []).append(median_seconds(run, args.repeats))
            times.setdefault("chosen", []).append(median_seconds(run, args.repeats))
        t = {k: min(v) for k, v in times.items()}
        first = t.get("both", t["flash"])
        both = f"{t['both']:.3f}" if "both" in t else "- (no LM head)"
        top = f"{t['top']:.3f} | " if "top" in t else "- | "
        top_gain = f"{t['top'] / t['chosen']:.2f}x" if "top" in t else "-"
        steps.append(
            f"| {name} | {both} | {t['flash']:.3f} | {top}{t['chosen']:.3f} | {first / t['chosen']:.2f}x "
            f"| {top_gain} |"
        )
        print(steps[-1], flush=True)
    body = (
        "\n".join(rows) + "\n\nOne SDPA forward + backward, batch 16, 4 heads, bf16, median of "
        f"{args.repeats} after a warm-up; 'path taken': what `nn.blocks.attention` uses for a bf16 "
        f"training step at that length (MATH_ATTENTION_MAX_LEN = {blocks.MATH_ATTENTION_MAX_LEN}).\n\n"
        + "\n".join(steps)
        + "\n\nOne training step (forward, backward, AdamW) under bf16 autocast on the shipped model's "
        "weights (cast to fp32, trainable as their recipes make them), the same batch and RNG state each "
        f"time; each cell the best of two interleaved medians of {args.repeats} steps. 'head at every "
        "position': Tar's LM forward wrapped to ignore `select`, the loss rows taken from the full logits "
        "(the softmax runs on the loss rows either way); 'top block at every position': its stack "
        "wrapped to ignore `rows`, the loss rows gathered after the final norm. "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    report("bf16 training steps: attention kernel, LM head and top block at the loss rows", body, args.write)


if __name__ == "__main__":
    main()
