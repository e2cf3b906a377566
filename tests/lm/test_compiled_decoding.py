"""Fixed-shape KV caches and the compiled decoding step give what eager decoding gives."""

from __future__ import annotations

import pytest
import torch

from dialect.lm import DecoderLM, LMConfig, SamplingConfig
from dialect.nn.blocks import StaticKVCache

GREEDY = SamplingConfig(temperature=0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(**overrides) -> DecoderLM:
    cfg = {"vocab_size": 37, "dim": 32, "depth": 2, "heads": 4, "max_len": 64, "prefix_dim": 12}
    cfg.update(overrides)
    model = DecoderLM(LMConfig(**cfg)).eval()
    with torch.no_grad():
        model.head.weight.mul_(20)  # clear greedy winners, so float rounding cannot flip a token
    return model


def _static(model: DecoderLM, batch: int, capacity: int) -> list[StaticKVCache]:
    c = model.config
    return StaticKVCache.empty_stack(c.depth, batch, c.heads, capacity, model.head_dim, "cpu", torch.float32)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_static_caches_equal_the_full_forward(positions):
    """Prefill, a 2-token chunk (the mask keeps it causal), then one by one: the same logits."""
    model = _model(positions=positions)
    prefix, ids = torch.randn(2, 3, 12), torch.randint(0, 37, (2, 9))
    with torch.no_grad():
        full = model(ids, prefix)
        caches = _static(model, 2, 16)
        parts = [model(ids[:, :3], prefix, caches=caches)]
        parts.append(model(ids[:, 3:5], caches=caches, start=6))
        parts += [model(ids[:, t : t + 1], caches=caches, start=3 + t) for t in range(5, 9)]
    assert caches[0].length == 12 and all(c.pos is caches[0].pos for c in caches)
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_static_cache_refuses_a_wrong_start_or_overflow():
    model = _model()
    caches = _static(model, 1, 4)
    with torch.no_grad():
        model(torch.randint(0, 37, (1, 3)), caches=caches)
        with pytest.raises(ValueError, match="start=2"):
            model(torch.randint(0, 37, (1, 1)), caches=caches, start=2)
        with pytest.raises(ValueError, match="cache full"):
            model(torch.randint(0, 37, (1, 2)), caches=caches, start=3)


def test_compiled_decoding_equals_eager_with_guidance_and_token_bias():
    """The AR de-tokenizer's case: prefix, classifier-free guidance (2B rows), a bias per fed token."""
    model = _model()
    prefix, uncond = torch.randn(2, 3, 12), torch.randn(2, 3, 12)
    bias = torch.randn(2, 11, 32)
    cfg = SamplingConfig(temperature=0.0, cfg_scale=3.0)

    def run() -> torch.Tensor:
        return model.generate(prefix, 12, cfg, uncond_prefix=uncond, token_bias=bias)

    eager = run()
    model.compile_decoding()
    try:
        compiled, again = run(), run()  # the second call replays the compiled step
    finally:
        model.compile_decoding(False)
    assert torch.equal(compiled, eager) and torch.equal(again, eager)
    assert torch.equal(run(), eager)  # back to the eager path


def test_compiled_decoding_follows_new_weights():
    """The step reads the weights' decoding transposes, refreshed at every generate call."""
    model = _model(prefix_dim=0)
    model.compile_decoding()
    ids = torch.randint(0, 37, (1, 4))
    before = model.generate(None, 6, GREEDY, ids=ids)
    with torch.no_grad():
        for p in model.stack.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = model.generate(None, 6, GREEDY, ids=ids)
    model.compile_decoding(False)
    assert torch.equal(after, model.generate(None, 6, GREEDY, ids=ids))
    assert before.shape == after.shape
