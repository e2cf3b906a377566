"""Batch-1 decoding speed of DecoderLM: KV cache vs recompute vs `transformers` generate, against
the memory-bandwidth bound, all measured side by side in one run.

Decoding one token at batch 1 reads every weight once (and the KV cache), so its speed is bounded
by memory read bandwidth / bytes read per step. This script samples that bandwidth (a streaming sum
over a 512 MiB fp32 tensor, same threads) before every timed run, takes the best sample of the run
as the machine's bandwidth (each row also shows its own median), and reports each path as a
fraction of the bound (`step_bytes`: the weights a step streams, i.e. all but the token embedding
table, plus the cache) and of the looser bandwidth / model bytes. A second probe sums a buffer of
a step's own size beside it: the same working set as a step, so the share of the weights the
last-level cache keeps between steps raises that bound as much as the step's speed.

For each total length L (n = min(steps, L / 2) new tokens after a prompt of L - n random ids):
- cached / uncached: the last n greedy steps only (prefill untimed): one token into the
  preallocated KV cache, or the whole sequence recomputed;
- ours / HF generate: end to end, prefill included: `DecoderLM.generate` vs `transformers`
  `LlamaForCausalLM.generate` (greedy, KV cache) on the same weights (`dialect.lm.llama.to_llama`);
- compiled: the same two timings with `DecoderLM.compile_decoding()` (fixed-shape KV caches, one
  `torch.compile`d step per token); its compile time is paid in the warm-up and reported apart;
- same: all paths produced the same greedy tokens.
A fourth table times each prompt's prefill alone (ours and HF) against the fp32 matmul peak of the
run: at L = 1024 the prefill is most of the 'generate' time, so it says how far 'ours / HF' can go.
A fifth table runs the same model under half inference (`DecoderLM.half_inference()`, compiled:
fp16 copies of the weights for one row, bf16 for a prefill) against its own bound (half the weight
bytes) and against `transformers` generate on the same weights in fp32 and in bf16.
A sixth table times the compiled step built ahead of time (`compile_decoding(ahead_of_time=True)`,
AOTInductor: the same kernels without dynamo's frame and inductor's Python wrapper around them).
A second table (`--long`, default 1024) generates that many tokens after an 8-id prompt: decoding
speed over a long generation, without the long prefill that dominates the first table's L = 1024
'generate' columns. Paths run interleaved, `--repeats` times; medians are reported.

    python benchmarks/bench_decode.py [--config llama20m|tiny] [--steps 64] [--long 1024]
        [--repeats 3] [--threads N] [--write]
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from dialect.lm import DecoderLM, LMConfig, SamplingConfig
from dialect.lm.llama import to_llama
from dialect.lm.transformer import CAPACITY_STEP
from dialect.nn.linear import Linear

try:
    from benchmarks.common import BandwidthProbe, matmul_peak, median_seconds, parser, report, start
except ImportError:  # run as a script from the repo root
    from common import BandwidthProbe, matmul_peak, median_seconds, parser, report, start

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
    with model.decoding_steps(caches):  # as `generate` runs its steps
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


PATHS = {  # name -> (which model it runs, (model, prompt ids, n) -> (seconds, tokens))
    "cached": ("eager", lambda m, ids, n: decode_tail(m, ids, n, cached=True)),
    "uncached": ("eager", lambda m, ids, n: decode_tail(m, ids, n, cached=False)),
    "compiled": ("compiled", lambda m, ids, n: decode_tail(m, ids, n, cached=True)),
    "aot": ("aot", lambda m, ids, n: decode_tail(m, ids, n, cached=True)),
    "half_compiled": ("half", lambda m, ids, n: decode_tail(m, ids, n, cached=True)),
    "ours": ("eager", generate_ours),
    "ours_compiled": ("compiled", generate_ours),
    "ours_aot": ("aot", generate_ours),
    "ours_half": ("half", generate_ours),
    "hf": ("hf", generate_hf),
    "hf_bf16": ("hf_bf16", generate_hf),
}
# these must agree exactly
FP32_PATHS = ("cached", "uncached", "compiled", "aot", "ours", "ours_compiled", "ours_aot", "hf")
LONG_PROMPT = 8  # --long rows: prompt ids before the L generated tokens


def prefill(model: DecoderLM, llama, ids: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    """One prefill over `ids` (1, P), as each `generate` runs it first -> (our seconds, transformers'
    seconds, our FLOPs): ours fills a fresh KV cache and takes the logits of the last position only;
    transformers' forward runs with its cache on and `logits_to_keep=1`. Interleaved, medians.
    FLOPs: the matmuls torch's FlopCounterMode counts (the Linear layers; it does not count the CPU
    attention kernel) plus causal attention, 2 P^2 dim per layer (q.k and p.v over P^2 / 2 pairs),
    but 4 P dim in the top layer, which attends from the last query alone (`Stack(last_only=True)`)."""
    mask = torch.ones_like(ids)

    def ours() -> None:
        model(ids, caches=model.new_caches(1, ids.shape[1] + 1, ids.device), last_only=True)

    def hf() -> None:
        llama(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)

    with FlopCounterMode(display=False) as counter:
        ours()
    times: dict = {ours: [], hf: []}
    for _ in range(repeats):
        for fn in times:
            times[fn].append(median_seconds(fn, 3))
    c, P = model.config, ids.shape[1]
    flops = counter.get_total_flops() + (c.depth - 1) * 2 * P * P * c.dim + 4 * P * c.dim
    return statistics.median(times[ours]), statistics.median(times[hf]), float(flops)


def step_bytes(model: DecoderLM, positions: float, half: bool = False) -> float:
    """Bytes one batch-1 decoding step reads: every weight but the token embedding table (of which
    it reads one row), plus the keys and values of `positions` cached positions in every layer.
    `half`: under half inference, whose single-row products stream fp16 copies (2 bytes a weight)."""
    c = model.config
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    emb = model.tok_emb.weight
    if not c.tie_embeddings:  # a tied table is streamed whole by the output head
        weights -= (emb.shape[0] - 1) * emb.shape[1] * emb.element_size()
    if half:
        weights -= sum(
            m.weight.numel() * (m.weight.element_size() - 2) for m in model.modules() if isinstance(m, Linear)
        )
    return weights + 2 * c.depth * c.dim * emb.element_size() * positions


def weights_only(
    model: DecoderLM, probe: BandwidthProbe, local: BandwidthProbe, passes: int = 200
) -> tuple[float, float, float, float]:
    """The weight products of one decoding step alone: every Linear of `model` applied to one row,
    nothing else (no norms, attention, cache or Python between them) -> (passes/s eager, passes/s
    as one compiled function, median bandwidths in bytes/s sampled around the timings by `probe`
    and by the step-sized `local`). The ceiling
    that the CPU's matrix-vector kernels leave a decoding step (eager: the BLAS on the slabs;
    compiled: inductor's row-dot loops, `dialect.nn.linear`), as opposed to the bandwidth bound,
    which a streaming sum sets."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    rows = [torch.ones(1, m.in_features, device=model.tok_emb.weight.device) for m in linears]

    def one_pass() -> list[torch.Tensor]:  # returned, so the compiled copy cannot drop the work
        return [m(x) for m, x in zip(linears, rows, strict=True)]

    compiled = torch.compile(one_pass, fullgraph=True)
    compiled()
    bandwidth, local_bandwidth, times, compiled_times = [], [], [], []
    for _ in range(3):
        bandwidth.append(probe.sample())
        local_bandwidth.append(local.sample())
        times.append(median_seconds(one_pass, passes // 3))
        compiled_times.append(median_seconds(compiled, passes // 3))
    return (
        1 / statistics.median(times),
        1 / statistics.median(compiled_times),
        statistics.median(bandwidth),
        statistics.median(local_bandwidth),
    )


def measure(
    models: dict,
    prompt: int,
    n: int,
    repeats: int,
    probe: BandwidthProbe,
    local: BandwidthProbe,
    paths=tuple(PATHS),
) -> tuple[dict[str, float], float, float, bool, float]:
    """Tokens/s of each path in `paths` generating n tokens after `prompt` random ids, the median
    memory read bandwidths sampled between them (bytes/s; `probe` over 512 MiB, `local` over a
    step's bytes), whether all fp32 paths decoded the same tokens, and the fraction of half
    inference's generated tokens equal to fp32's."""
    device = models["eager"].tok_emb.weight.device
    g = torch.Generator().manual_seed(prompt + n)
    ids = torch.randint(0, models["eager"].config.vocab_size, (1, prompt), generator=g).to(device)
    times: dict[str, list[float]] = {k: [] for k in paths}
    bandwidth, local_bandwidth, tokens = [], [], {}
    for _ in range(repeats):
        for name in paths:
            bandwidth.append(probe.sample())
            local_bandwidth.append(local.sample())
            which, fn = PATHS[name]
            t, tokens[name] = fn(models[which], ids, n)
            times[name].append(t)
    exact = [tokens[k].to(device) for k in paths if k in FP32_PATHS]
    same = all(torch.equal(exact[0], t) for t in exact)
    agree = (tokens["ours_half"].to(device) == tokens["ours"].to(device)).float().mean().item()
    rates = {k: n / statistics.median(v) for k, v in times.items()}
    return rates, statistics.median(bandwidth), statistics.median(local_bandwidth), same, agree


def decode_parser(doc: str, repeats: int):
    """The command line of a decoding benchmark: `common.parser` plus the model (`--config`), the
    total lengths L (`--lengths`) and the new tokens n of each (`--steps`)."""
    ap = parser(doc, repeats=repeats)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="llama20m", help="model size")
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="total lengths L")
    ap.add_argument("--steps", type=int, default=64, help="new tokens n (at most L / 2)")
    return ap


def main() -> None:
    ap = decode_parser(__doc__, repeats=3)
    ap.add_argument(
        "--long", type=int, nargs="*", default=[1024],
        help=f"also generate this many tokens after a {LONG_PROMPT}-id prompt (no uncached path)",
    )  # fmt: skip
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    config = CONFIGS[args.config]
    torch.manual_seed(0)
    model = DecoderLM(config).to(device).eval()
    llama = to_llama(model).to(device)
    twins = [DecoderLM(config).to(device).eval() for _ in range(3)]
    for twin in twins:
        twin.load_state_dict(model.state_dict())
    compiled, half = twins[0].compile_decoding(), twins[1].half_inference().compile_decoding()
    aot = twins[2].compile_decoding(ahead_of_time=True)
    llama_bf16 = to_llama(model).to(device, torch.bfloat16)
    models = {"eager": model, "compiled": compiled, "aot": aot, "half": half}
    models |= {"hf": llama, "hf_bf16": llama_bf16}
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    load = start(args)
    probe = BandwidthProbe(device)
    local = BandwidthProbe(device, mib=round(step_bytes(model, 0) / 2**20))  # a step's working set
    print(f"{params / 1e6:.1f}M parameters, {weight_bytes / 1e6:.1f} MB")
    head = (
        "| cached tok/s | compiled tok/s | bandwidth GB/s | bound tok/s | cached / bound "
        "| compiled / bound | compiled / row's bound | compiled / same-bytes bound "
        "| cached / model-bytes bound | ours generate tok/s "
        "| ours compiled generate tok/s | HF generate tok/s "
        "| ours / HF | ours compiled / HF | same |"
    )
    tail_rows = [
        "| L | n | uncached tok/s | cached / uncached " + head,
        "|---" * 19 + "|",
    ]
    long_rows = ["| new tokens | prompt " + head, "|---" * 17 + "|"]
    compile_seconds = {}
    tail, long = [], []

    def bounds(rate: float, positions: float, bandwidth: float, local_bw: float) -> str:
        """A path's tokens/s against the strict, the row's and the same-bytes bound (table cells)."""
        read = rate * step_bytes(model, positions)  # bytes/s
        return f"| {read / probe.best:.0%} | {read / bandwidth:.0%} | {read / local_bw:.0%} "

    def row(r: dict[str, float], bandwidth: float, local_bw: float, positions: float, same: bool) -> str:
        best = probe.best  # the bound: the highest bandwidth seen in the whole run
        bound = best / step_bytes(model, positions)
        return (
            f"| {r['cached']:.1f} | {r['compiled']:.1f} | {bandwidth / 1e9:.1f} | {bound:.0f} "
            f"| {r['cached'] / bound:.0%} " + bounds(r["compiled"], positions, bandwidth, local_bw)
            + f"| {r['cached'] * weight_bytes / best:.0%} "
            f"| {r['ours']:.1f} | {r['ours_compiled']:.1f} | {r['hf']:.1f} "
            f"| {r['ours'] / r['hf']:.2f}x | {r['ours_compiled'] / r['hf']:.2f}x "
            f"| {'yes' if same else 'NO'} |"
        )  # fmt: skip

    with torch.inference_mode():
        t0 = time.perf_counter()
        measure(models, 56, 8, 1, probe, local)  # warm-up: allocator, kernels, thread pool
        compile_seconds["first warm-up"] = time.perf_counter() - t0
        products, products_compiled, products_bw, products_local = weights_only(model, probe, local)
        peak = matmul_peak()
        prefills = {}
        for length in args.lengths:
            prompt = length - min(args.steps, length // 2)
            g = torch.Generator().manual_seed(prompt)
            ids = torch.randint(0, config.vocab_size, (1, prompt), generator=g)
            prefills[length] = prefill(model, llama, ids.to(device), args.repeats)
        for length in args.lengths:
            n = min(args.steps, length // 2)
            t0 = time.perf_counter()  # compiles the step for this length's cache shape
            measure(models, length - n, 2, 1, probe, local)
            compile_seconds[f"L={length}"] = time.perf_counter() - t0
            r, bw, local_bw, same, agree = measure(models, length - n, n, args.repeats, probe, local)
            tail.append((length, n, r, bw, local_bw, same, agree))
            print(length, {k: round(v, 1) for k, v in r.items()}, f"{bw / 1e9:.1f} GB/s", flush=True)
        long_paths = tuple(k for k in PATHS if k != "uncached")
        for n in args.long:
            t0 = time.perf_counter()
            measure(models, LONG_PROMPT, n, 1, probe, local, long_paths)  # compiles, warms
            compile_seconds[f"{n} new"] = time.perf_counter() - t0
            r, bw, local_bw, same, agree = measure(
                models, LONG_PROMPT, n, args.repeats, probe, local, long_paths
            )
            long.append((n, r, bw, local_bw, same, agree))
            print(n, "new", {k: round(v, 1) for k, v in r.items()}, f"{bw / 1e9:.1f} GB/s", flush=True)
    # formatted after every sample is in: the bound uses the best bandwidth of the whole run
    for length, n, r, bw, local_bw, same, _ in tail:
        tail_rows.append(
            f"| {length} | {n} | {r['uncached']:.1f} | {r['cached'] / r['uncached']:.1f}x "
            + row(r, bw, local_bw, length - n / 2, same)
        )
    for n, r, bw, local_bw, same, _ in long:
        long_rows.append(f"| {n} | {LONG_PROMPT} " + row(r, bw, local_bw, LONG_PROMPT + n / 2, same))
    prefill_rows = [
        "| L | prompt ids | GFLOP | ours prefill ms | HF prefill ms | ours GFLOP/s | ours / matmul peak "
        "| prefill share of ours generate | HF generate / (prefill at peak + compiled steps) |",
        "|---" * 9 + "|",
    ]
    for length, n, r, *_ in tail:
        ours_s, hf_s, flops = prefills[length]
        ideal = flops / peak + n / r["compiled"]  # ours, were the prefill at the matmul peak
        prefill_rows.append(
            f"| {length} | {length - n} | {flops / 1e9:.2f} | {ours_s * 1e3:.1f} | {hf_s * 1e3:.1f} "
            f"| {flops / ours_s / 1e9:.0f} | {flops / ours_s / peak:.0%} | {ours_s * r['ours'] / n:.0%} "
            f"| {n / r['hf'] / ideal:.2f}x |"
        )  # fmt: skip
    half_rows = [
        "| rows | half compiled tok/s | half bound tok/s | half compiled / half bound | fp32 compiled tok/s "
        "| half / fp32 compiled | ours half generate tok/s | HF fp32 generate tok/s | HF bf16 generate tok/s "
        "| ours half / HF fp32 | ours half / HF bf16 | half tokens = fp32 |",
        "|---" * 12 + "|",
    ]
    # every timed row of the first two tables: (label, rates, bandwidths, mean cached positions, agree)
    runs = [
        (f"L={length}, n={n}", r, bw, lbw, length - n / 2, agree) for length, n, r, bw, lbw, _, agree in tail
    ]
    runs += [
        (f"{n} new after {LONG_PROMPT}", r, bw, lbw, LONG_PROMPT + n / 2, agree)
        for n, r, bw, lbw, _, agree in long
    ]
    for label, r, _, _, positions, agree in runs:
        bound = probe.best / step_bytes(model, positions, half=True)
        half_rows.append(
            f"| {label} | {r['half_compiled']:.1f} | {bound:.0f} | {r['half_compiled'] / bound:.0%} "
            f"| {r['compiled']:.1f} | {r['half_compiled'] / r['compiled']:.2f}x | {r['ours_half']:.1f} "
            f"| {r['hf']:.1f} | {r['hf_bf16']:.1f} | {r['ours_half'] / r['hf']:.2f}x "
            f"| {r['ours_half'] / r['hf_bf16']:.2f}x | {agree:.0%} |"
        )  # fmt: skip
    aot_rows = [
        "| rows | compiled tok/s | ahead-of-time tok/s | ahead-of-time / compiled | ahead-of-time / bound "
        "| ahead-of-time / row's bound | ahead-of-time / same-bytes bound "
        "| ours ahead-of-time generate tok/s | ours compiled generate tok/s | HF generate tok/s "
        "| ours ahead-of-time / HF |",
        "|---" * 11 + "|",
    ]
    for label, r, bw, local_bw, positions, _ in runs:
        aot_rows.append(
            f"| {label} | {r['compiled']:.1f} | {r['aot']:.1f} | {r['aot'] / r['compiled']:.2f}x "
            + bounds(r["aot"], positions, bw, local_bw)
            + f"| {r['ours_aot']:.1f} | {r['ours_compiled']:.1f} | {r['hf']:.1f} "
            f"| {r['ours_aot'] / r['hf']:.2f}x |"
        )  # fmt: skip
    c = config
    linear_bytes = sum(
        m.weight.numel() * m.weight.element_size() for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    products_bound = probe.best / linear_bytes
    ceiling = (
        "| weight products alone tok/s | compiled tok/s | bandwidth GB/s (median) | their bound tok/s "
        "| products / bound | compiled / bound | compiled / median's bound | compiled / same-bytes bound |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {products:.0f} | {products_compiled:.0f} | {products_bw / 1e9:.1f} | {products_bound:.0f} "
        f"| {products / products_bound:.0%} | {products_compiled / products_bound:.0%} "
        f"| {products_compiled * linear_bytes / products_bw:.0%} "
        f"| {products_compiled * linear_bytes / products_local:.0%} |\n"
    )
    kv = 2 * c.depth * c.dim * 4
    streamed = step_bytes(model, 0)
    note = (
        f"\nDecoderLM '{args.config}' (dim {c.dim}, depth {c.depth}, heads {c.heads}, vocab {c.vocab_size}, "
        f"{params / 1e6:.1f}M parameters, {weight_bytes / 1e6:.1f} MB fp32, RoPE) and the same weights as a "
        f"`transformers` {__import__('transformers').__version__} LlamaForCausalLM; batch 1, fp32, greedy, "
        f"torch.inference_mode, on {device}. First table: a prompt of L - n random ids, then n new tokens; "
        "'cached', 'uncached' and 'compiled' time the n steps only (prefill untimed), the 'generate' "
        "columns time prefill + n steps end to end. Second table: "
        f"the given number of new tokens after a {LONG_PROMPT}-id prompt (no uncached path: it would "
        "recompute up to 1,000 positions per token). "
        "'bound': the memory read bandwidth, sampled (a streaming sum over 512 MiB) before every timed "
        f"run; the best sample of the run ({probe.best / 1e9:.1f} GB/s: the machine's capability; "
        "the 'bandwidth' column gives each row's median, which swings with the neighbours on this "
        "shared VM; 'compiled / row's bound' judges against that median instead) divided by the bytes "
        "one step reads. 'same-bytes bound': the same division by the median bandwidth of a streaming "
        f"sum over a buffer of a step's size ({local.x.numel() * 4 / 2**20:.0f} MiB), sampled beside "
        "the 512 MiB one: the step's working set, so whatever share of it the last-level cache keeps "
        "from one read to the next helps the bound as it helps the step; the tightest of the three. "
        "The bytes a step reads: the "
        f"weights it streams ({streamed / 1e6:.1f} MB: all but the token embedding table, of which a "
        f"step reads one row) plus the KV cache at the mean cached length of the timed steps "
        f"({kv / 1e3:.1f} kB per position). 'model-bytes bound' divides by the whole "
        f"{weight_bytes / 1e6:.1f} MB instead (the issue's wording; looser by the embedding table). "
        "Third table: the ceiling under that bound that the CPU's matrix-vector product leaves: every "
        f"Linear of the model ({linear_bytes / 1e6:.1f} MB) applied to one row and nothing else, in the "
        "same decoding layouts (`dialect.nn.linear`: eager, the BLAS on column slabs; compiled as one "
        "function, inductor's row-dot loops), against the same bandwidth bound. "
        "Fourth table: the prompt's prefill alone, which the first table's 'generate' columns include "
        "(ours: a fresh KV cache filled, logits of the last position; HF: its forward with the cache on "
        "and `logits_to_keep=1`, as `generate` runs it), its FLOPs (ours: the Linear layers' as torch's "
        "FlopCounterMode counts them, plus causal attention's 2 P^2 dim per layer) "
        f"against the best fp32 2048^3 matmul of the run ({peak / 1e9:.0f} GFLOP/s); the last "
        "column is the most our `generate` could gain on HF's at that length with the compiled steps "
        "as measured and a prefill at the matmul peak. "
        f"'compiled' is `DecoderLM.compile_decoding()` (fixed-shape caches, a `torch.compile`d "
        f"step, cache capacities rounded up to multiples of {CAPACITY_STEP}); warm-ups before the timed "
        "runs compiled it for each new cache shape, taking (warm-up decoding of every path included) "
        + ", ".join(f"{k}: {v:.0f} s" for k, v in compile_seconds.items())
        + ". Fifth table: half inference (`DecoderLM.half_inference()`, compiled: products on fp16 "
        "copies of the weights for one row, bf16 for a prefill; `dialect.nn.linear`), its bound the same "
        f"best bandwidth over the bytes a step then reads ({step_bytes(model, 0, half=True) / 1e6:.1f} MB "
        "of weights, the fp32 KV cache), against `transformers` generate on the same weights in fp32 and "
        "cast to bf16; 'half tokens = fp32': the share of its greedy tokens equal to fp32 decoding's "
        "(the 'same' columns above cover the fp32 paths only). Sixth table: the same compiled step "
        "built ahead of time by AOTInductor (`compile_decoding(ahead_of_time=True)`, `dialect.lm.aot`: "
        "no dynamo frame or inductor Python wrapper around the kernels; built once for every "
        "capacity, in the first warm-up), timed in the same interleaved repeats; its greedy tokens "
        "are in the 'same' columns" + f". Median of {args.repeats} interleaved repeats after a warm-up. "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    title = f"LM decoding: KV cache vs recompute vs transformers ({args.config}, batch 1)"
    long_table = "\n".join(long_rows) + "\n\n" if args.long else ""
    tables = [*tail_rows, "", long_table + ceiling, *prefill_rows, "", *half_rows, "", *aot_rows]
    body = "\n".join(tables) + "\n" + note
    report(title, body, args.write)


if __name__ == "__main__":
    main()
