"""Encoding throughput: TA-Tok and pixel-VQ images/s at batch 1 and 64, and our vector quantizer
against a plain matmul + argmax and `vector-quantize-pytorch`, measured side by side in one run.

Quantizer: N vectors of width D against K codes, inference (eval mode, no gradients), for both
metrics: cosine (TA-Tok's choice: unit vectors, argmax of x.c) and euclidean (LlamaGen-style, the
`vector-quantize-pytorch` default). The plain baseline is the one-line `(x @ C.T).argmax(-1)`
(euclidean: `(2 x @ C.T - |c|^2).argmax(-1)`), which any quantizer must at least match. All three
must pick the same ids. Ours takes the certified bf16 shortlist for the cosine argmax where bf16
matmuls are fast (`dialect.quant.search`); the row "ours, fp32 search" turns it off
(`VectorQuantizer.bf16_search = False`), as does the TA-Tok row marked so.
`vector-quantize-pytorch` is installed for this benchmark only
(`pip install torch==2.13.0 vector-quantize-pytorch`); without it that column is skipped.

Images: the shipped default model's TA-Tok (frozen teacher ViT + pooling + quantizer) at each scale
and its pixel-VQ encoder, fp32 weights, inputs 64 x 64.

    python benchmarks/bench_encode.py [--threads N] [--repeats 5] [--write]
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from dialect.quant.vq import VectorQuantizer, VQConfig
from dialect.unified.pipeline import Dialect

try:
    from benchmarks.common import median_seconds, parser, report, start
except ImportError:  # run as a script from the repo root
    from common import median_seconds, parser, report, start


def fp32_search(fn):
    """fn, run with the quantizer's bf16 shortlist turned off (the plain fp32 search)."""

    def run():
        before, VectorQuantizer.bf16_search = VectorQuantizer.bf16_search, False
        try:
            return fn()
        finally:
            VectorQuantizer.bf16_search = before

    return run


def quantizer_rows(k: int, d: int, n: int, repeats: int) -> list[str]:
    try:
        from vector_quantize_pytorch import VectorQuantize
    except ImportError:
        VectorQuantize = None
    rows = []
    torch.manual_seed(0)
    x = torch.randn(n, d)
    for metric in ("cosine", "euclidean"):
        ours = VectorQuantizer(VQConfig(dim=d, num_codes=k, metric=metric, codebook="learned")).eval()
        codes = ours.codebook.codes().detach()  # (K, D), unit rows for cosine
        paths = {"ours": lambda q=ours: q(x)[1]}
        if metric == "cosine":
            paths["ours, fp32 search"] = fp32_search(lambda q=ours: q(x)[1])
            paths["matmul + argmax"] = lambda c=codes: (F.normalize(x, dim=-1) @ c.T).argmax(-1)
        else:
            paths["matmul + argmax"] = lambda c=codes: (2 * x @ c.T - (c * c).sum(-1)).argmax(-1)
        if VectorQuantize is not None:
            theirs = VectorQuantize(dim=d, codebook_size=k, use_cosine_sim=metric == "cosine").eval()
            theirs._codebook.embed.copy_(codes[None])  # same codes (cosine: it normalises them again)
            paths["vector-quantize-pytorch"] = lambda v=theirs: v(x[None])[1][0]
        ids = {}
        secs = {}
        with torch.inference_mode():
            for _ in range(repeats):  # interleaved, so a noisy neighbour slows all paths alike
                for name, fn in paths.items():
                    secs.setdefault(name, []).append(median_seconds(fn, 1))
                    ids[name] = fn()
        plain = n / statistics.median(secs["matmul + argmax"])
        for name in paths:
            rate = n / statistics.median(secs[name])
            agree = (ids[name] == ids["ours"]).float().mean().item()
            rows.append(f"| {metric} | {name} | {rate / 1e3:.1f}k | {rate / plain:.2f}x | {agree:.4f} |")
    return rows


def image_rows(batch_sizes: list[int], repeats: int) -> list[str]:
    d = Dialect.from_pretrained()
    tatok = d.tar.tatok.float().eval()
    pixelvq = d.decoders["ar"].codec.float().eval()
    size = d.image_size
    rows = []
    with torch.inference_mode():
        for b in batch_sizes:
            x = torch.rand(b, 3, size, size) * 2 - 1
            for scale in range(len(tatok.config.pool_scales)):
                secs = median_seconds(lambda s=scale, x=x: tatok.encode_ids(x, s), repeats)
                n = tatok.scale_side(scale) ** 2
                rows.append(
                    f"| TA-Tok scale {scale} ({n} tokens) | {b} | {b / secs:.1f} | {secs / b * 1e3:.2f} |"
                )
            secs = median_seconds(fp32_search(lambda x=x: tatok.encode_ids(x, 0)), repeats)
            n = tatok.scale_side(0) ** 2
            name = f"TA-Tok scale 0 ({n} tokens), fp32 search"
            rows.append(f"| {name} | {b} | {b / secs:.1f} | {secs / b * 1e3:.2f} |")
            secs = median_seconds(lambda x=x: pixelvq.encode_ids(x), repeats)
            side = size // pixelvq.config.downsample
            rows.append(f"| pixel VQ ({side}x{side} ids) | {b} | {b / secs:.1f} | {secs / b * 1e3:.2f} |")
    return rows


def main() -> None:
    ap = parser(__doc__, repeats=5)
    ap.add_argument("--codes", type=int, default=8192, help="K")
    ap.add_argument("--dim", type=int, default=384, help="D")
    ap.add_argument("--vectors", type=int, default=4096, help="N")
    args = ap.parse_args()
    load = start(args)
    q = [
        "| metric | quantizer | vectors/s | vs matmul + argmax | same ids as ours |",
        "|---|---|---|---|---|",
    ]
    q += quantizer_rows(args.codes, args.dim, args.vectors, args.repeats)
    print("\n".join(q), flush=True)
    im = ["| encoder | batch | images/s | ms / image |", "|---|---|---|---|"]
    im += image_rows([1, 64], args.repeats)
    print("\n".join(im), flush=True)
    body = (
        f"Quantizer: K = {args.codes}, D = {args.dim}, N = {args.vectors} vectors, inference, fp32, "
        f"median of {args.repeats} interleaved repeats.\n\n" + "\n".join(q) + "\n\n"
        "Image encoders of the shipped default model (fp32 weights, 64 x 64 inputs), median of "
        f"{args.repeats} runs after a warm-up.\n\n" + "\n".join(im) + "\n\n"
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    report("Encoding throughput: TA-Tok, pixel VQ and the quantizer", body, args.write)


if __name__ == "__main__":
    main()
