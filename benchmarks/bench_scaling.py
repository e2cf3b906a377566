"""Scaling on this CPU: decoding time per token vs sequence length, and tokenizer time per image vs
image resolution, with a log-log plot and fitted slopes.

- Decoding: DecoderLM 'tiny' (bench_decode's config), batch 1, greedy; time per token of the last
  `--steps` steps at total lengths L = 64 ... 2048, with the KV cache and recomputing the whole
  sequence. Expected slopes: about 0 for the cache while weights dominate (attention over the cache
  grows linearly but is small), about 1 to 2 without it (each step reruns L positions).
- Tokenizers: the shipped model's TA-Tok (finest scale) and pixel-VQ encoder (both take any side:
  2-D RoPE, convolutions) at 64, 128 and 256 pixels, batch 8. Expected slope about 2 (pixels grow
  with the side squared), above 2 where attention over (side / patch)^2 tokens starts to count.

Writes benchmarks/results/scaling.{json,png}.

    python benchmarks/bench_scaling.py [--threads N] [--write]
"""

from __future__ import annotations

import json
import statistics

import numpy as np
import torch

from dialect.lm import DecoderLM
from dialect.unified.pipeline import Dialect

try:
    from benchmarks.bench_decode import CONFIGS, decode_tail
    from benchmarks.common import ROOT, machine, median_seconds, parser, report, start
except ImportError:  # run as a script from the repo root
    from bench_decode import CONFIGS, decode_tail
    from common import ROOT, machine, median_seconds, parser, report, start

OUT = ROOT / "benchmarks" / "results"


def slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def decode_scaling(lengths: list[int], steps: int, repeats: int) -> dict[str, list[float]]:
    config = CONFIGS["tiny"]
    config.max_len = max(config.max_len, max(lengths))
    torch.manual_seed(0)
    model = DecoderLM(config).eval()
    out: dict[str, list[float]] = {"cached": [], "uncached": []}
    with torch.inference_mode():
        decode_tail(model, torch.zeros(1, 8, dtype=torch.long), 4, True)  # warm-up
        for length in lengths:
            ids = torch.randint(
                0, config.vocab_size, (1, length - steps), generator=torch.Generator().manual_seed(0)
            )
            for cached in (True, False):
                t = statistics.median(decode_tail(model, ids, steps, cached)[0] for _ in range(repeats))
                out["cached" if cached else "uncached"].append(t / steps * 1e3)  # ms per token
            print(
                f"L={length}: cached {out['cached'][-1]:.2f} ms/token, uncached {out['uncached'][-1]:.2f}",
                flush=True,
            )
    return out


def tokenizer_scaling(sides: list[int], batch: int, repeats: int) -> dict[str, list[float]]:
    d = Dialect.from_pretrained()
    tatok, pixelvq = d.tar.tatok.float().eval(), d.decoders["ar"].codec.float().eval()
    out: dict[str, list[float]] = {"TA-Tok": [], "pixel VQ": []}
    with torch.inference_mode():
        for side in sides:
            x = torch.rand(batch, 3, side, side) * 2 - 1
            for name, fn in (
                ("TA-Tok", lambda x=x: tatok.encode_ids(x, 0)),
                ("pixel VQ", lambda x=x: pixelvq.encode_ids(x)),
            ):
                out[name].append(median_seconds(fn, repeats) / batch * 1e3)  # ms per image
            print(
                f"{side}px: TA-Tok {out['TA-Tok'][-1]:.1f} ms/image, pixel VQ {out['pixel VQ'][-1]:.1f}",
                flush=True,
            )
    return out


def plot(lengths, dec, sides, tok, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, ys in dec.items():
        a.loglog(lengths, ys, "o-", label=f"{name} (slope {slope(lengths, ys):.2f})")
    a.set(xlabel="sequence length L", ylabel="ms / token", title="DecoderLM tiny, batch 1")
    for name, ys in tok.items():
        b.loglog(sides, ys, "o-", label=f"{name} (slope {slope(sides, ys):.2f})")
    b.set(xlabel="image side (pixels)", ylabel="ms / image", title="tokenizers, batch 8")
    for ax in (a, b):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = parser(__doc__, repeats=3)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    ap.add_argument("--sides", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=16, help="timed decode steps per length")
    args = ap.parse_args()
    load = start(args)
    dec = decode_scaling(args.lengths, args.steps, args.repeats)
    tok = tokenizer_scaling(args.sides, 8, args.repeats)
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "lengths": args.lengths, "decode_ms_per_token": dec, "sides": args.sides,
              "tokenize_ms_per_image": tok}  # fmt: skip
    (OUT / "scaling.json").write_text(json.dumps(result, indent=1))
    plot(args.lengths, dec, args.sides, tok, OUT / "scaling.png")
    rows = ["| L | cached ms/token | uncached ms/token |", "|---|---|---|"]
    rows += [
        f"| {n} | {c:.2f} | {u:.2f} |"
        for n, c, u in zip(args.lengths, dec["cached"], dec["uncached"], strict=True)
    ]
    rows += ["", "| side | TA-Tok ms/image | pixel VQ ms/image |", "|---|---|---|"]
    rows += [
        f"| {s} | {a:.1f} | {b:.1f} |"
        for s, a, b in zip(args.sides, tok["TA-Tok"], tok["pixel VQ"], strict=True)
    ]
    slopes = ", ".join(f"{k} {slope(args.lengths, v):.2f}" for k, v in dec.items())
    slopes_t = ", ".join(f"{k} {slope(args.sides, v):.2f}" for k, v in tok.items())
    body = (
        "\n".join(rows) + f"\n\nLog-log slopes: decoding vs L: {slopes}; tokenizing vs side: {slopes_t}. "
        f"Plot: [benchmarks/results/scaling.png](benchmarks/results/scaling.png). "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    report("Scaling: decoding vs length, tokenizing vs resolution (log-log)", body, args.write)


if __name__ == "__main__":
    main()
