"""Nearest-code search for the cosine argmax: a bf16 shortlist, certified, rescored in fp32.

Why: in TA-Tok's deterministic encode the fp32 similarity x @ C^T (N x D x K) is most of the cost
on the CPU: 2,560 vectors (40 images at the finest scale) x 384 x 4,096 codes took 61 ms of an
82 ms encode, while the same product in bf16 took 10.5 ms on this AVX512-BF16 machine. A plain
bf16 argmax is not an option: rounding moves the scores by up to 0.0026 (measured) while the best
two codes of a background cell are often closer than that, so its argmax differed from fp32's for
2.3% of those vectors, and every consumer (the LM's training tokens, evaluation, pretokenized
folders) must see the same ids.

How (`certified_argmax`): score all codes in bf16, keep the `shortlist` best, rescore those in
fp32 and take the best. For unit vectors x and c the bf16 score is within `BF16_SCORE_ERROR` of
the fp32 one: rounding the inputs to bf16 (8 significant bits, relative error <= 2^-9 each) moves
x.c by at most 2^-8 * sum|x_i c_i| <= 2^-8 (Cauchy-Schwarz), rounding the bf16 output by at most
2^-9 * |x.c| <= 2^-9, and fp32 accumulation adds far less (2^-12 covers it with room). So a code
outside the shortlist scores at most (the shortlist's lowest bf16 score + that bound) in fp32;
wherever the best rescored candidate beats that, it is the fp32 argmax. Rows that fail the test
(0.1% of TA-Tok's finest tokens at shortlist 8) are searched again in full fp32. The ids therefore
equal the full fp32 search's, up to fp32 rounding itself (two codes whose fp32 scores differ by a
few ulps may order differently, as they already do between batch sizes or chunkings).

Measured on that batch: 2.8x faster than the fp32 search (22 ms vs 61 ms), every id the same
(`benchmarks/bench_encode.py` times it beside the fp32 search and a plain matmul + argmax). End to
end, the tiny chain's ids stage (32,000 scenes, 2,688,000 TA-Tok ids over three scales) encoded
with it and without it differed in 20 ids, each a near-tie whose two codes' fp32 scores were
0 to 4.2e-7 apart (a few ulps: the summation order of the rescoring differs from the GEMM's); the
stage ran 159 s -> 129 s, and a Tar training step (which encodes its images) 10% faster.
Used only where bf16 matmuls are fast (`dialect.core.hardware.fast_bf16`) and for the cosine
metric, whose scores the bound covers; training's stochastic draws keep the full fp32 softmax.
"""

from __future__ import annotations

import torch

BF16_SCORE_ERROR = 2.0**-8 + 2.0**-9 + 2.0**-12  # bound on |bf16 score - fp32 score|, unit vectors
SHORTLIST = 8  # candidates rescored in fp32 per vector (8: 99.9% of rows certified, see above)


def certified_argmax(
    x: torch.Tensor, codes: torch.Tensor, codes_t_bf16: torch.Tensor, shortlist: int = SHORTLIST
) -> tuple[torch.Tensor, int]:
    """x (N, D) fp32 unit rows, codes (K, D) fp32 unit rows, codes_t_bf16 (D, K) the same codes
    transposed in bf16 -> (ids (N,) int64, the fp32 argmax of x @ codes^T; how many rows fell
    back to the full fp32 search). See the module docstring for why these are the fp32 ids."""
    k = min(shortlist, codes.shape[0])
    approx = x.to(torch.bfloat16) @ codes_t_bf16  # (N, K) bf16
    cand_scores, cand = approx.topk(k, dim=-1)  # (N, k), best first
    exact = torch.einsum("nd,nkd->nk", x, codes[cand])  # (N, k) fp32
    best, pos = exact.max(dim=-1)
    ids = cand.gather(1, pos[:, None]).squeeze(1)
    if k == codes.shape[0]:  # every code was rescored: nothing to certify
        return ids, 0
    outside_max = cand_scores[:, -1].float() + BF16_SCORE_ERROR  # no code outside scores above it
    unsure = (best <= outside_max).nonzero().squeeze(1)
    if unsure.numel():
        ids[unsure] = (x[unsure] @ codes.t()).argmax(dim=-1)
    return ids, int(unsure.numel())
