"""Batch-1 decoding speed of DecoderLM: KV cache vs recompute vs `transformers` generate, against
the memory-bandwidth bound, all measured side by side in one run.

Decoding one token at batch 1 reads every weight once, so its speed is bounded by
memory read bandwidth / model bytes. This script measures that bandwidth (streaming sum over a
512 MiB fp32 tensor, best of 5, same threads) and reports each path as a fraction of the bound.

For each total length L (n = min(steps, L / 2) new tokens after a prompt of L - n random ids):
- cached / uncached: the last n greedy steps only (prefill untimed): one token into the
  preallocated KV cache, or the whole sequence recomputed;
- ours / HF generate: end to end, prefill included: `DecoderLM.generate` vs `transformers`
  `LlamaForCausalLM.generate` (greedy, KV cache) on the same weights (`dialect.lm.llama.to_llama`);
- compiled: the same two timings with `DecoderLM.compile_decoding()` (fixed-shape KV caches, one
  `torch.compile`d step per token); its compile time is paid in the warm-up and reported apart;
- same: all six paths produced the same greedy tokens.
Paths run interleaved, `--repeats` times; medians are reported.

    python benchmarks/bench_decode.py [--config llama20m|tiny] [--steps 64] [--repeats 3]
        [--threads N] [--write]
"""

from __future__ import annotations

import statistics
import time

import torch

from dialect.lm import DecoderLM, LMConfig, SamplingConfig
from dialect.lm.llama import to_llama
from dialect.lm.transformer import CAPACITY_STEP

try:
    from benchmarks.common import parser, read_bandwidth, report, start
except ImportError:  # run as a script from the repo root
    from common import parser, read_bandwidth, report, start

CONFIGS = {
    # the issue's reference size class: a 4-layer ~20M-parameter Llama
    "llama20m": LMConfig(vocab_size=8192, dim=512, depth=4, heads=8, max_len=1088),
    # the size class of the tiny AR de-tokenizer / Tar LM
    "tiny": LMConfig(vocab_size=1024, dim=256, depth=4, heads=4, max_len=1088),
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


def generate_ours(model: DecoderLM, ids: torch.Tensor, n: int) -> tuple[float, torch.Tensor]:
    _sync(ids.device)
    t0 = time.perf_counter()
    out = model.generate(None, n, SamplingConfig(temperature=0.0), ids=ids)
    _sync(ids.device)
    return time.perf_counter() - t0, out


def generate_hf(llama, ids: torch.Tensor, n: int) -> tuple[float, torch.Tensor]:
    _sync(ids.device)
    t0 = time.perf_counter()
    out = llama.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False,
        use_cache=True, pad_token_id=0, eos_token_id=None,
    )  # fmt: skip
    _sync(ids.device)
    return time.perf_counter() - t0, out[:, ids.shape[1] :]


PATHS = {  # (eager DecoderLM, its compiled twin, transformers Llama, prompt ids, n) -> (s, tokens)
    "cached": lambda m, c, h, ids, n: decode_tail(m, ids, n, cached=True),
    "uncached": lambda m, c, h, ids, n: decode_tail(m, ids, n, cached=False),
    "compiled": lambda m, c, h, ids, n: decode_tail(c, ids, n, cached=True),
    "ours": lambda m, c, h, ids, n: generate_ours(m, ids, n),
    "ours_compiled": lambda m, c, h, ids, n: generate_ours(c, ids, n),
    "hf": lambda m, c, h, ids, n: generate_hf(h, ids, n),
}


def measure(
    model: DecoderLM, compiled: DecoderLM, llama, length: int, n: int, repeats: int
) -> tuple[dict[str, float], bool]:
    """Tokens/s of every path at total length `length`, and whether all decoded the same tokens."""
    device = model.tok_emb.weight.device
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(0, model.config.vocab_size, (1, length - n), generator=g).to(device)
    times: dict[str, list[float]] = {k: [] for k in PATHS}
    tokens = {}
    for _ in range(repeats):
        for name, run in PATHS.items():
            t, tokens[name] = run(model, compiled, llama, ids, n)
            times[name].append(t)
    same = all(torch.equal(tokens["cached"], t.to(tokens["cached"])) for t in tokens.values())
    return {k: n / statistics.median(v) for k, v in times.items()}, same


def main() -> None:
    ap = parser(__doc__, repeats=3)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="llama20m", help="model size")
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="total lengths L")
    ap.add_argument("--steps", type=int, default=64, help="new tokens n (at most L / 2)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    config = CONFIGS[args.config]
    torch.manual_seed(0)
    model = DecoderLM(config).to(device).eval()
    llama = to_llama(model).to(device)
    compiled = DecoderLM(config).to(device).eval()
    compiled.load_state_dict(model.state_dict())
    compiled.compile_decoding()
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    load = start(args)
    bandwidth = read_bandwidth(device)
    bound = bandwidth / weight_bytes
    gbs = bandwidth / 1e9
    print(
        f"{params / 1e6:.1f}M parameters, {weight_bytes / 1e6:.1f} MB; "
        f"bandwidth {gbs:.1f} GB/s -> {bound:.0f} tok/s"
    )
    rows = [
        "| L | n | cached tok/s | uncached tok/s | cached / uncached | compiled tok/s | cached / bound "
        "| compiled / bound | ours generate tok/s | ours compiled generate tok/s | HF generate tok/s "
        "| ours / HF | ours compiled / HF | same |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    compile_seconds = {}
    with torch.inference_mode():
        t0 = time.perf_counter()
        measure(model, compiled, llama, 64, 8, 1)  # warm-up: allocator, kernels, thread pool
        compile_seconds["first warm-up"] = time.perf_counter() - t0
        for length in args.lengths:
            n = min(args.steps, length // 2)
            t0 = time.perf_counter()  # compiles the step for this length's cache shape
            measure(model, compiled, llama, length, 2, 1)
            compile_seconds[f"L={length}"] = time.perf_counter() - t0
            r, same = measure(model, compiled, llama, length, n, args.repeats)
            rows.append(
                f"| {length} | {n} | {r['cached']:.1f} | {r['uncached']:.1f} "
                f"| {r['cached'] / r['uncached']:.1f}x | {r['compiled']:.1f} "
                f"| {r['cached'] / bound:.0%} | {r['compiled'] / bound:.0%} "
                f"| {r['ours']:.1f} | {r['ours_compiled']:.1f} | {r['hf']:.1f} "
                f"| {r['ours'] / r['hf']:.2f}x | {r['ours_compiled'] / r['hf']:.2f}x "
                f"| {'yes' if same else 'NO'} |"
            )  # fmt: skip
            print(rows[-1], flush=True)
    c = config
    note = (
        f"\nDecoderLM '{args.config}' (dim {c.dim}, depth {c.depth}, heads {c.heads}, vocab {c.vocab_size}, "
        f"{params / 1e6:.1f}M parameters, {weight_bytes / 1e6:.1f} MB fp32, RoPE) and the same weights as a "
        f"`transformers` {__import__('transformers').__version__} LlamaForCausalLM; batch 1, fp32, greedy, "
        f"torch.inference_mode, on {device}. Memory read bandwidth measured in this run: "
        f"{bandwidth / 1e9:.1f} GB/s, so the weight-streaming bound is {bound:.0f} tok/s "
        f"(the KV cache adds {4 * c.depth * c.dim * 2 / 1e3:.1f} kB per position on top, not counted). "
        f"'cached' and 'uncached' time the last n steps only; 'generate' columns time prefill + n steps "
        f"end to end. 'compiled' is `DecoderLM.compile_decoding()` (fixed-shape caches, a `torch.compile`d "
        f"step, cache capacities rounded up to multiples of {CAPACITY_STEP}); warm-ups before the timed "
        "runs compiled it for each new cache shape, taking (warm-up decoding of all six paths included) "
        + ", ".join(f"{k}: {v:.0f} s" for k, v in compile_seconds.items())
        + f". Median of {args.repeats} interleaved repeats after a warm-up. "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    title = f"LM decoding: KV cache vs recompute vs transformers ({args.config}, batch 1)"
    report(title, "\n".join(rows) + "\n" + note, args.write)


if __name__ == "__main__":
    main()
