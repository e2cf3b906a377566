"""The vector quantizer contract, its numerics, dead-code restart, and usage metrics."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import dialect.quant.usage as usage_mod
import dialect.quant.vq as vq_mod
from dialect.core.config import config_from_dict
from dialect.core.errors import DialectError
from dialect.quant import (
    CodeUsage,
    VectorQuantizer,
    VQConfig,
    entropy_bits,
    perplexity_from_counts,
    restart_vectors,
    usage_from_counts,
)


def learned(dim=8, num_codes=32, **kw) -> VectorQuantizer:
    return VectorQuantizer(VQConfig(dim=dim, num_codes=num_codes, codebook="learned", **kw))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("codebook", ["learned", "text"])
def test_contract_and_eval_equals_lookup(metric, codebook):
    vq = VectorQuantizer(VQConfig(dim=8, num_codes=48, metric=metric, codebook=codebook))
    z = torch.randn(2, 3, 5, 8)
    z_q, ids, aux = vq(z)
    assert z_q.shape == z.shape and z_q.dtype == z.dtype
    assert ids.shape == (2, 3, 5) and ids.dtype == torch.long
    assert {"loss", "codebook_loss", "commit_loss"} <= set(aux) and aux["loss"].ndim == 0
    assert torch.allclose(aux["loss"], aux["codebook_loss"] + 0.25 * aux["commit_loss"])
    vq.eval()
    z_q, ids, aux = vq(z)
    assert torch.equal(z_q, vq.lookup(ids))
    x = F.normalize(z, dim=-1) if metric == "cosine" else z
    codes = vq.codebook.codes()
    if metric == "cosine":
        assert torch.equal(ids, (x @ codes.T).argmax(-1))
    else:
        assert torch.equal(ids, torch.cdist(x.reshape(-1, 8), codes).argmin(-1).reshape(2, 3, 5))
    assert torch.allclose(aux["codebook_loss"], F.mse_loss(vq.lookup(ids), x))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_anchored_ids_keep_the_anchor_within_the_margin_only(metric):
    vq = learned(metric=metric, num_codes=48, chunk_size=7).eval()
    z = torch.randn(4, 5, 8)
    best = vq(z)[1]
    anchor = torch.randint(0, 48, (4, 5))
    x = F.normalize(z, dim=-1) if metric == "cosine" else z
    codes = vq.codebook.codes().detach()
    sim = x @ codes.T if metric == "cosine" else 2 * x @ codes.T - (codes * codes).sum(-1)
    gap = sim.max(-1).values - sim.gather(-1, anchor[..., None])[..., 0]  # >= 0
    margin = gap.flatten().median().item()
    got = vq.anchored_ids(z, anchor, margin)
    assert torch.equal(got, torch.where(gap <= margin, anchor, best))
    assert 0 < (got == anchor).sum() < got.numel()  # both branches taken
    assert torch.equal(vq.anchored_ids(z, best, 0.0), best)
    assert torch.equal(vq.anchored_ids(z, anchor, float(gap.max()) + 1), anchor)
    with pytest.raises(DialectError, match="margin"):
        vq.anchored_ids(z, anchor, -0.1)
    with pytest.raises(DialectError, match="anchor"):
        vq.anchored_ids(z, anchor[:, :4], 0.1)
    with pytest.raises(DialectError):
        vq.anchored_ids(z, anchor + 48, 0.1)


def test_straight_through_gradient_is_identity():
    vq = learned(metric="euclidean")
    z = torch.randn(6, 8, requires_grad=True)
    z_q, _, _ = vq(z)
    z_q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
    # cosine: the identity is taken on the normalised vector, so the gradient is normalize's
    vq, z2 = learned(metric="cosine"), z.detach().clone().requires_grad_()
    vq(z2)[0].pow(2).mul(torch.arange(8.0)).sum().backward()
    z3 = z.detach().clone().requires_grad_()
    x = F.normalize(z3, dim=-1)
    (2 * vq.lookup(vq(z3)[1]) * torch.arange(8.0) * x).sum().backward()
    assert torch.allclose(z2.grad, z3.grad, atol=1e-6)


def test_commitment_gradient_reaches_z_and_codebook_loss_reaches_codes():
    vq = learned(metric="euclidean")
    z = torch.randn(6, 8, requires_grad=True)
    z_q, ids, aux = vq(z)
    aux["loss"].backward()
    expected = 0.25 * 2 * (z - vq.lookup(ids)).detach() / z.numel()
    assert torch.allclose(z.grad, expected, atol=1e-7)
    assert vq.codebook.weight.grad.abs().sum() > 0


def test_stochastic_sampling_in_training_only():
    vq = learned(dim=8, num_codes=64, stochastic=True, tau=0.5)
    z = torch.randn(200, 8)
    ids_a = vq(z, generator=torch.Generator().manual_seed(1))[1]
    ids_b = vq(z, generator=torch.Generator().manual_seed(2))[1]
    ids_a2 = vq(z, generator=torch.Generator().manual_seed(1))[1]
    assert not torch.equal(ids_a, ids_b) and torch.equal(ids_a, ids_a2)
    vq.eval()
    argmax = (F.normalize(z, dim=-1) @ vq.codebook.codes().T).argmax(-1)
    for seed in (1, 2):
        assert torch.equal(vq(z, generator=torch.Generator().manual_seed(seed))[1], argmax)
    off = copy.deepcopy(vq).train()
    off.config.stochastic = False
    assert torch.equal(off(z)[1], argmax)
    tiny = copy.deepcopy(vq).train()
    tiny.config.tau = 1e-6
    assert torch.equal(tiny(z, generator=torch.Generator().manual_seed(3))[1], argmax)


@pytest.mark.parametrize("pull", ["sampled", "nearest"])
def test_stochastic_losses_pull_the_configured_code(pull):
    """The forward always returns the sampled code; the VQ losses pull the sampled code or the
    nearest one, as `pull` says."""
    vq = learned(dim=8, num_codes=64, stochastic=True, tau=0.5, pull=pull)
    z = torch.randn(200, 8)
    z_q, ids, aux = vq(z, generator=torch.Generator().manual_seed(1))
    x, codes = F.normalize(z, dim=-1), vq.codebook.codes()
    nearest = (x @ codes.T).argmax(-1)
    assert (ids != nearest).any()  # tau 0.5 samples away from the argmax
    torch.testing.assert_close(z_q, codes[ids])
    pulled = codes[nearest if pull == "nearest" else ids]
    torch.testing.assert_close(aux["codebook_loss"], F.mse_loss(pulled, x))
    torch.testing.assert_close(aux["commit_loss"], F.mse_loss(x, pulled))
    with pytest.raises(DialectError, match="pull"):
        learned(pull="furthest")


def test_sample_rows_draws_each_id_with_its_probability():
    """Inverse-CDF sampling: empirical frequencies match the rows, zero-probability ids never come."""
    g = torch.Generator().manual_seed(0)
    row = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.3, 0.0])
    ids = vq_mod.sample_rows(row.expand(100_000, -1), g)
    freq = torch.bincount(ids, minlength=6).float() / ids.numel()
    assert freq[row == 0].sum() == 0
    torch.testing.assert_close(freq, row, atol=0.006, rtol=0)  # 4 sigma of 100k draws at p = 0.5
    peaked = torch.softmax(torch.randn(50, 4096, generator=g) / 1e-6, dim=-1)  # one-hot rows
    assert torch.equal(vq_mod.sample_rows(peaked, g), peaked.argmax(-1))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_chunked_equals_unchunked_at_65536_codes(metric):
    vq = learned(dim=16, num_codes=65536, metric=metric, chunk_size=0).eval()
    z = torch.randn(40, 16)
    z_q, ids, aux = vq(z)
    vq.config.chunk_size = 7
    z_q7, ids7, aux7 = vq(z)
    assert torch.equal(ids, ids7) and torch.equal(z_q, z_q7) and torch.equal(aux["loss"], aux7["loss"])
    if metric == "cosine":
        assert torch.equal(ids, (F.normalize(z, dim=-1) @ vq.codebook.codes().T).argmax(-1))


def test_fp32_lookup_under_bf16_autocast():
    vq = learned(dim=8, num_codes=256).eval()
    z = torch.randn(64, 8).bfloat16()
    ref_q, ref_ids, _ = vq(z.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_q, ids, aux = vq(z)
        z_q32, ids32, _ = vq(z.float())
    assert z_q.dtype == torch.bfloat16 and aux["loss"].dtype == torch.float32
    assert torch.equal(ids, ref_ids) and torch.equal(ids32, ref_ids)
    assert z_q32.dtype == torch.float32 and torch.equal(z_q32, ref_q)
    assert torch.equal(z_q, ref_q.bfloat16())


def test_bad_ids_and_inputs():
    vq = learned(num_codes=32)
    for bad in ([-1], [32], [[0, 40]]):
        with pytest.raises(DialectError, match=r"\[0, 31\]"):
            vq.lookup(torch.tensor(bad))
    with pytest.raises(DialectError, match="integers"):
        vq.lookup(torch.tensor([0.0]))
    assert vq.lookup(torch.tensor([[0, 31]])).shape == (1, 2, 8)
    with pytest.raises(DialectError, match=r"\(\.\.\., 8\)"):
        vq(torch.randn(3, 7))


def test_config_validation_and_yaml_types():
    with pytest.raises(DialectError, match="metric"):
        learned(metric="manhattan")
    with pytest.raises(DialectError, match="tau"):
        learned(tau=0.0)
    cfg = config_from_dict(VQConfig, {"codebook": "learned", "num_codes": 8, "tokens": []})
    assert cfg.num_codes == 8
    with pytest.raises(DialectError):
        config_from_dict(VQConfig, {"num_code": 8})


def test_save_and_load_text_quantizer(tmp_path):
    vq = VectorQuantizer(VQConfig(dim=16, num_codes=64)).eval()
    assert len(vq.config.tokens) == 64 and vq.config.embed_dim == 384
    with torch.no_grad():
        vq.codebook.proj.bias.normal_()
    vq.save_pretrained(tmp_path / "vq")
    back = VectorQuantizer.from_pretrained(tmp_path / "vq").eval()
    assert torch.equal(back.codebook.embeddings, vq.codebook.embeddings)
    assert back.config.tokens == vq.config.tokens
    z = torch.randn(10, 16)
    assert torch.equal(back(z)[0], vq(z)[0])
    ids = vq(z)[1]
    assert back.codebook_words(ids) == vq.codebook_words(ids)


def test_dead_codes_move_onto_data_vectors():
    vq = learned(dim=4, num_codes=8, restart_dead_codes=True, dead_after=2)
    codes0 = vq.codebook.codes().detach().clone()
    near0 = codes0[0] + 1e-3 * torch.randn(16, 4)  # every vector picks code 0
    vq(near0)
    vq(near0)
    assert vq.unused_steps.tolist() == [0] + [2] * 7
    fresh = F.normalize(torch.randn(16, 4), dim=-1)
    vq(fresh)  # restarts at the start of this call
    codes = vq.codebook.codes().detach()
    assert torch.allclose(codes[0], codes0[0])
    for k in range(1, 8):
        assert torch.cdist(codes[k : k + 1], fresh).min() < 1e-5, k
    vq.eval()
    vq(near0)  # no counting or restarts outside training
    assert torch.equal(vq.codebook.codes(), codes)


def test_restart_choice_is_identical_on_every_rank(monkeypatch):
    gathered = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # (world, M, D)
    picked = restart_vectors(gathered, 4)
    assert torch.equal(picked, torch.stack([gathered[0, 0], gathered[1, 0], gathered[0, 1], gathered[1, 1]]))
    # two simulated ranks of a world of 2: same replicated codebook, different local batches
    monkeypatch.setattr(vq_mod, "world_size", lambda: 2)
    rank0 = learned(dim=4, num_codes=8, restart_dead_codes=True, dead_after=1)
    rank1 = copy.deepcopy(rank0)
    dead = torch.tensor([1, 4, 6])
    for r in (rank0, rank1):
        r.unused_steps[dead] = 5
    x0, x1 = torch.randn(10, 4), torch.randn(10, 4)
    offer0, offer1 = rank0._restart_candidates(x0, 3), rank1._restart_candidates(x1, 3)
    assert offer0.shape == offer1.shape == (2, 4)  # ceil(3 / 2) local rows each
    assert all(any(torch.equal(row, x) for x in x0) for row in offer0)
    gathered = torch.stack([offer0, offer1])  # what all_gather hands every rank
    for r in (rank0, rank1):
        r._apply_restart(dead, gathered)
    assert torch.equal(rank0.codebook.weight, rank1.codebook.weight)
    assert torch.equal(rank0.codebook.weight[dead], torch.stack([offer0[0], offer1[0], offer0[1]]))
    assert rank0.unused_steps[dead].tolist() == [0, 0, 0]


def test_usage_counting_uses_the_histogram_of_all_ranks(monkeypatch):
    vq = learned(dim=4, num_codes=8, restart_dead_codes=True, dead_after=3)
    other = torch.zeros(8, dtype=torch.long)
    other[5] = 2  # code 5 is used on the other rank only
    monkeypatch.setattr(vq_mod, "all_reduce_sum", lambda t: t.add_(other))
    _, ids, _ = vq.train()(torch.randn(3, 4))
    unused = torch.ones(8, dtype=torch.long)
    unused[ids] = 0
    unused[5] = 0
    assert torch.equal(vq.unused_steps, unused)


@pytest.mark.parametrize(
    ("counts", "usage", "perplexity"),
    [
        ([2, 2, 0, 0], 0.5, 2.0),
        ([1, 1, 1, 1], 1.0, 4.0),
        ([4, 0, 0, 0], 0.25, 1.0),
        ([1, 2, 1, 0], 0.75, 2**1.5),
    ],
)
def test_usage_and_perplexity_by_hand(counts, usage, perplexity):
    t = torch.tensor(counts)
    assert usage_from_counts(t) == usage
    assert perplexity_from_counts(t) == pytest.approx(perplexity, rel=1e-12)
    p = [c / sum(counts) for c in counts if c]
    assert perplexity == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)), rel=1e-12)
    assert entropy_bits(t) == pytest.approx(math.log2(perplexity), abs=1e-12)


def test_code_usage_over_an_eval_pass(monkeypatch):
    tracker = CodeUsage(4)
    assert tracker.compute() == {"usage": 0.0, "perplexity": 1.0, "entropy_bits": 0.0, "count": 0.0}
    tracker.update(torch.tensor([[0, 1], [0, 1]]))
    tracker.update(torch.tensor([], dtype=torch.long))
    assert tracker.compute()["usage"] == 0.5 and tracker.compute()["perplexity"] == pytest.approx(2.0)
    with pytest.raises(DialectError, match=r"\[0, 3\]"):
        tracker.update(torch.tensor([4]))
    other = torch.tensor([0, 0, 4, 0])  # another rank saw code 2 four times
    monkeypatch.setattr(usage_mod, "all_reduce_sum", lambda t: t.add_(other))
    stats = tracker.compute()
    assert stats["usage"] == 0.75 and stats["count"] == 8.0
    assert stats["perplexity"] == pytest.approx(2**1.5)
    assert torch.equal(tracker.counts, torch.tensor([2, 2, 0, 0]))  # local counts untouched
    tracker.reset()
    assert tracker.counts is None
