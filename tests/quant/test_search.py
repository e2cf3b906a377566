"""The certified bf16 shortlist gives the fp32 argmax, where a plain bf16 argmax does not."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import dialect.quant.vq as vq_mod
from dialect.quant import VectorQuantizer, VQConfig
from dialect.quant.search import BF16_SCORE_ERROR, certified_argmax


def near_ties(n=600, k=512, d=64, seed=0):
    """Unit codes (K, D) and unit vectors (N, D) each almost halfway between two codes, so their
    best two scores differ by less than bf16 rounding moves them."""
    g = torch.Generator().manual_seed(seed)
    codes = F.normalize(torch.randn(k, d, generator=g), dim=-1)
    a, b = torch.randint(k, (n,), generator=g), torch.randint(k, (n,), generator=g)
    mix = 0.5 + 1e-3 * torch.randn(n, 1, generator=g)
    x = F.normalize(mix * codes[a] + (1 - mix) * codes[b] + 1e-3 * torch.randn(n, d, generator=g), dim=-1)
    return x, codes


def test_bf16_argmax_alone_differs_but_the_certified_one_does_not():
    x, codes = near_ties()
    exact = (x @ codes.t()).argmax(-1)
    codes_t16 = codes.t().to(torch.bfloat16).contiguous()
    plain_bf16 = (x.to(torch.bfloat16) @ codes_t16).argmax(-1)
    assert (plain_bf16 != exact).sum() > 10  # the hazard the shortlist exists for
    ids, _ = certified_argmax(x, codes, codes_t16)
    assert torch.equal(ids, exact)  # both tied codes sit in the shortlist and are rescored in fp32


def test_bound_covers_the_measured_bf16_error_and_a_tiny_shortlist_stays_exact():
    x, codes = near_ties(seed=1)
    codes_t16 = codes.t().to(torch.bfloat16).contiguous()
    err = ((x.to(torch.bfloat16) @ codes_t16).float() - x @ codes.t()).abs().max()
    assert 0 < err <= BF16_SCORE_ERROR
    ids, fallbacks = certified_argmax(x, codes, codes_t16, shortlist=1)
    assert torch.equal(ids, (x @ codes.t()).argmax(-1)) and fallbacks > 0
    well_separated = codes[:50] + 0.01 * torch.randn(50, codes.shape[1])
    ids, fallbacks = certified_argmax(F.normalize(well_separated, dim=-1), codes, codes_t16)
    assert torch.equal(ids, torch.arange(50)) and fallbacks == 0


def test_quantizer_takes_the_shortlist_only_where_it_applies(monkeypatch):
    monkeypatch.setattr(vq_mod, "fast_bf16", lambda device: True)  # as on a CPU with native bf16
    calls = []
    real = vq_mod.certified_argmax
    monkeypatch.setattr(vq_mod, "certified_argmax", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, codes = near_ties(n=300, k=256, d=32, seed=2)
    vq = VectorQuantizer(VQConfig(dim=32, num_codes=256, codebook="learned", chunk_size=128)).eval()
    with torch.no_grad():
        vq.codebook.weight.copy_(codes)
    shortlisted = vq(x)[1]
    assert len(calls) == 3  # one per chunk of 128
    monkeypatch.setattr(VectorQuantizer, "bf16_search", False)
    assert torch.equal(shortlisted, vq(x)[1]) and len(calls) == 3
    monkeypatch.setattr(VectorQuantizer, "bf16_search", True)
    euclid = VectorQuantizer(VQConfig(dim=32, num_codes=256, codebook="learned", metric="euclidean")).eval()
    euclid(x)
    sampled = VectorQuantizer(VQConfig(dim=32, num_codes=256, codebook="learned", stochastic=True)).train()
    sampled(x)
    assert len(calls) == 3  # neither the euclidean metric nor training's sampled codes use it
