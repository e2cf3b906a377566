"""Sampling functions on hand-made logits: top-k, nucleus, greedy, guidance, vocabulary masks."""

from __future__ import annotations

import math

import pytest
import torch

from dialect.lm import SamplingConfig, apply_cfg, filter_logits, sample, vocab_mask


def _kept(logits: torch.Tensor) -> list[int]:
    return torch.isfinite(logits).nonzero().flatten().tolist()


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, 2.0]])
    out = filter_logits(logits, top_k=2)
    assert torch.isfinite(out).sum() == 2
    assert set(_kept(out[0])) <= {1, 2, 3}
    assert _kept(filter_logits(torch.tensor([[1.0, 4.0, 0.0, 2.0]]), top_k=2)[0]) == [1, 3]
    # kept logits are unchanged; k >= V keeps everything
    assert torch.equal(filter_logits(logits, top_k=6), logits)


def test_top_p_keeps_the_minimal_nucleus():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])  # sorted: 0.5, 0.3, 0.15, 0.05
    logits = probs.log()[None]
    assert _kept(filter_logits(logits, top_p=0.45)[0]) == [1]  # 0.5 >= 0.45
    assert _kept(filter_logits(logits, top_p=0.75)[0]) == [1, 3]  # 0.5 + 0.3 >= 0.75
    assert _kept(filter_logits(logits, top_p=0.85)[0]) == [1, 2, 3]  # needs 0.15 too
    assert _kept(filter_logits(logits, top_p=0.99)[0]) == [0, 1, 2, 3]
    assert _kept(filter_logits(logits, top_p=1e-6)[0]) == [1]  # always at least one token


def test_top_k_then_top_p():
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    # top-2 leaves 0.4, 0.3 -> renormalised 0.571, 0.429; top_p 0.5 then keeps only the first
    assert _kept(filter_logits(probs.log(), top_k=2, top_p=0.5)[0]) == [0]
    assert _kept(filter_logits(probs.log(), top_k=3, top_p=0.9)[0]) == [0, 1, 2]


def test_temperature_zero_is_argmax():
    logits = torch.randn(8, 50)
    out = sample(logits, SamplingConfig(temperature=0.0))
    assert torch.equal(out, logits.argmax(-1))


def test_samples_stay_inside_the_filter_and_follow_probabilities():
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]]).expand(4000, -1)
    g = torch.Generator().manual_seed(0)
    out = sample(logits, SamplingConfig(top_k=2), g)
    assert set(out.tolist()) == {1, 2}
    # p(1) = e^2 / (e^2 + e^1) = 0.731
    assert abs((out == 1).float().mean().item() - math.e / (math.e + 1)) < 0.03
    # a low temperature sharpens towards the argmax
    cold = sample(logits, SamplingConfig(temperature=0.1), torch.Generator().manual_seed(0))
    assert (cold == 1).float().mean() > 0.99


def test_generator_makes_draws_reproducible():
    logits = torch.randn(16, 100)
    cfg = SamplingConfig(top_p=0.9)
    a = sample(logits, cfg, torch.Generator().manual_seed(3))
    b = sample(logits, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_cfg_formula():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])
    assert torch.allclose(apply_cfg(cond, uncond, 2.0), torch.tensor([1.5, 1.0]))
    assert torch.equal(apply_cfg(cond, uncond, 1.0), cond)
    assert torch.equal(apply_cfg(cond, uncond, 0.0), uncond)


def test_vocab_mask():
    assert vocab_mask(slice(2, 5), 8).tolist() == [False, False, True, True, True, False, False, False]
    assert vocab_mask(slice(6, None), 8).nonzero().flatten().tolist() == [6, 7]
    assert vocab_mask(torch.tensor([0, 7]), 8).nonzero().flatten().tolist() == [0, 7]
    empty = torch.tensor([], dtype=torch.long)
    for bad in (slice(5, 5), slice(0, 9), slice(0, 8, 2), torch.tensor([8]), empty):
        with pytest.raises(ValueError):
            vocab_mask(bad, 8)
    with pytest.raises(ValueError, match="token ids"):
        vocab_mask(torch.ones(8, dtype=torch.bool), 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": -0.1}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"cfg_scale": float("nan")}, "cfg_scale"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**kwargs)


def test_filter_and_sample_validate_too():
    logits = torch.randn(2, 10)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, top_p=0.0)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(logits, top_k=-2)
    cfg = SamplingConfig()
    cfg.temperature = -1.0  # mutated after construction
    with pytest.raises(ValueError, match="temperature"):
        sample(logits, cfg)
