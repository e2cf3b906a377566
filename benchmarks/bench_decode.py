"""Decoding speed of DecoderLM at batch 1: the KV cache vs recomputing the whole sequence each step.

For each total length L, both paths first build a sequence of L - n ids (untimed: one prefill
forward), then decode its last n tokens greedily, and only those n steps are timed. The cached path
feeds one token per step into the preallocated cache; the uncached path runs the full sequence
again. Timing the tail keeps the uncached path at L = 1024 affordable and measures the steady-state
cost per token at that length. The two paths run interleaved, `--repeats` times, on the same
model; the median is reported, and both must produce the same tokens.

    python benchmarks/bench_decode.py [--config tiny|big] [--steps 32] [--repeats 3] [--threads N] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from dialect.lm import DecoderLM, LMConfig

try:
    from benchmarks.common import append_section, machine
except ImportError:  # run as a script from the repo root
    from common import append_section, machine

CONFIGS = {
    # the size class of the tiny AR de-tokenizer
    "tiny": LMConfig(vocab_size=1024, dim=256, depth=4, heads=4, max_len=1024),
    "big": LMConfig(vocab_size=4096, dim=512, depth=8, heads=8, max_len=1024),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def decode_tail(model: DecoderLM, ids: torch.Tensor, n: int, cached: bool) -> tuple[float, torch.Tensor]:
    """Prefill `ids` (1, L - n) untimed, then time n greedy steps -> (seconds, tokens (1, n))."""
    device, start = ids.device, ids.shape[1]
    caches = model.new_caches(1, start + n, device) if cached else None
    logits = model(ids, caches=caches)[:, -1]
    out = []
    _sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        tok = logits.argmax(-1, keepdim=True)  # (1, 1)
        out.append(tok)
        if cached:
            logits = model(tok, caches=caches, start=start + i)[:, -1]
        else:
            ids = torch.cat([ids, tok], dim=1)
            logits = model(ids)[:, -1]
    _sync(device)
    return time.perf_counter() - t0, torch.cat(out, dim=1)


def measure(model: DecoderLM, length: int, n: int, repeats: int) -> tuple[float, float, bool]:
    """(cached tokens/s, uncached tokens/s, same tokens) at total length `length`."""
    device = model.tok_emb.weight.device
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(0, model.config.vocab_size, (1, length - n), generator=g).to(device)
    times = {True: [], False: []}
    same = True
    for _ in range(repeats):
        t_c, tok_c = decode_tail(model, ids, n, cached=True)
        t_u, tok_u = decode_tail(model, ids, n, cached=False)
        times[True].append(t_c)
        times[False].append(t_u)
        same &= torch.equal(tok_c, tok_u)
    return n / statistics.median(times[True]), n / statistics.median(times[False]), same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="model size")
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="total lengths L")
    ap.add_argument("--steps", type=int, default=32, help="timed decode steps n at the tail of each L")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]  # the machine may be shared: a busy CPU slows both paths
    config = CONFIGS[args.config]
    torch.manual_seed(0)
    model = DecoderLM(config).to(device).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(machine())
    rows = ["| total length L | timed steps | cached tok/s | uncached tok/s | cached / uncached | same |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    with torch.inference_mode():
        measure(model, 64, 8, 1)  # warm-up: allocator, kernels, thread pool
        for length in args.lengths:
            n = min(args.steps, length - 1)
            tc, tu, same = measure(model, length, n, args.repeats)
            same = "yes" if same else "NO"
            rows.append(f"| {length} | {n} | {tc:.1f} | {tu:.1f} | {tc / tu:.1f}x | {same} |")
            print(rows[-1], flush=True)
    c = config
    note = (
        f"\nDecoderLM '{args.config}' (dim {c.dim}, depth {c.depth}, heads {c.heads}, vocab {c.vocab_size}, "
        f"{params:.1f}M parameters, RoPE), batch 1, fp32, greedy, torch.inference_mode, on {device}. "
        f"For each L both paths prefill L - n ids untimed, then the last n decode steps are timed: "
        f"the cached path feeds one token into a preallocated KV cache, the uncached path recomputes "
        f"the whole sequence. Median of {args.repeats} interleaved repeats after a warm-up; "
        f"'same' checks that both paths decoded identical greedy tokens. "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    table = "\n".join(rows) + "\n" + note
    print(table)
    if args.write:
        append_section(f"LM decoding: KV cache vs recompute ({args.config}, batch 1)", table)


if __name__ == "__main__":
    main()
