"""Ahead-of-time compiled decoding steps (`compile_decoding(ahead_of_time=True)`, AOTInductor):
the same greedy tokens as eager decoding, one library for every cache capacity, rebuilt when the
weights change, and the torch.compile'd step wherever it cannot run."""

from __future__ import annotations

import copy

import pytest
import torch

from dialect.lm import DecoderLM, LMConfig, SamplingConfig

GREEDY = SamplingConfig(temperature=0.0)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """The compiled step these tests fall back on shares dynamo's cache with other tests."""
    yield
    torch._dynamo.reset()


def _model(**overrides) -> DecoderLM:
    """A micro LM with both optional step inputs (token shift, token bias); its head scaled so
    greedy decoding has clear winners."""
    cfg = {"vocab_size": 37, "dim": 32, "depth": 2, "heads": 4, "max_len": 300, "token_shift": True}
    cfg.update(overrides)
    model = DecoderLM(LMConfig(**cfg)).eval()
    with torch.no_grad():
        model.head.weight.mul_(20)
    return model


def _decode(model: DecoderLM, ids: torch.Tensor, bias: torch.Tensor, n: int) -> torch.Tensor:
    with torch.inference_mode():
        return model.generate(None, n, GREEDY, ids=ids, token_bias=bias[:, : ids.shape[1] + n - 1])


def test_ahead_of_time_steps_decode_the_eager_tokens_with_one_library_for_every_capacity():
    model = _model()
    ids, bias = torch.randint(0, 37, (2, 5)), torch.randn(2, 200, 32)
    eager_short, eager_long = _decode(model, ids, bias, 6), _decode(model, ids, bias, 140)
    model.compile_decoding(ahead_of_time=True)
    assert torch.equal(_decode(model, ids, bias, 6), eager_short)  # capacity 128
    assert torch.equal(_decode(model, ids, bias, 140), eager_long)  # capacity 256
    assert model._aot.failed is None
    assert len(model._aot._libraries) == 1  # both capacities ran the one library
    # a step with gradients on leaves it for the torch.compile'd step: same logits either way
    caches = model.new_caches(2, 8)
    with torch.no_grad():
        model(ids, caches=caches, token_bias=bias[:, :5])
    one, six, prev = ids[:, :1], bias[:, 5:6], caches[0].prev.clone()
    with torch.no_grad():
        aot = model(one, caches=caches, start=5, token_bias=six)
    caches[0].pos.sub_(1)  # the same step again (it rewrites the same cache entries)
    caches[0].prev.copy_(prev)
    with torch.enable_grad():
        compiled = model(one, caches=caches, start=5, token_bias=six)
    assert torch.allclose(aot, compiled, atol=1e-5)
    assert len(model._aot._libraries) == 1


def test_changed_weights_rebuild_a_library_that_carries_a_copy():
    """Under half inference the library holds copies of the fp16 weights: a decoding after an
    in-place change of a weight must see the change (without `refresh` it would decode the old
    model's tokens)."""
    model = _model(token_shift=False).half_inference()
    reference = copy.deepcopy(model)  # decodes eagerly
    ids, bias = torch.randint(0, 37, (1, 4)), torch.randn(1, 40, 32)
    model.compile_decoding(ahead_of_time=True)
    before = _decode(reference, ids, bias, 12)
    assert torch.equal(_decode(model, ids, bias, 12), before)
    with torch.no_grad():
        for m in (model, reference):
            m.head.weight.mul_(-1)
    after = _decode(reference, ids, bias, 12)
    assert not torch.equal(after, before)  # the change matters
    assert torch.equal(_decode(model, ids, bias, 12), after)


def test_a_library_built_without_weights_is_reused_from_the_cache_by_another_model(monkeypatch, tmp_path):
    """A one-row fp32 library carries no weights, so another process (here: another model of the
    same configuration, other weights) loads it from the cache folder instead of building, and
    decodes its own weights' tokens."""
    monkeypatch.setenv("DIALECT_AOT_CACHE", str(tmp_path))
    ids, bias = torch.randint(0, 37, (1, 4)), torch.randn(1, 40, 32)
    first = _model(token_shift=False).compile_decoding(ahead_of_time=True)
    _decode(first, ids, bias, 6)
    assert len(list(tmp_path.glob("*.pt2"))) == 1
    torch.manual_seed(1)
    second = _model(token_shift=False)
    eager = _decode(second, ids, bias, 6)

    def no_build(*args, **kwargs):
        raise AssertionError("built again instead of loading the cached library")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_build)
    second.compile_decoding(ahead_of_time=True)
    assert torch.equal(_decode(second, ids, bias, 6), eager)
    assert second._aot.failed is None and second._aot._libraries


def test_a_failed_build_warns_and_decodes_through_the_compiled_step(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALECT_AOT_CACHE", str(tmp_path))  # nothing cached: it must build
    model = _model(token_shift=False)
    ids, bias = torch.randint(0, 37, (1, 4)), torch.randn(1, 40, 32)
    eager = _decode(model, ids, bias, 8)

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    model.compile_decoding(ahead_of_time=True)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert torch.equal(_decode(model, ids, bias, 8), eager)
    assert model._aot.failed.startswith("RuntimeError")
    assert torch.equal(_decode(model, ids, bias, 8), eager)  # no second attempt, no warning


def test_fp32_steps_read_the_models_weights_in_place_and_half_steps_their_own_copy():
    """A one-row fp32 step reads the parameters themselves (user-managed constants): a weight
    changed in place between two steps, with no `refresh`, changes the next step's logits as it
    changes the eager ones. Under half inference the library carries copies of the fp16 weights
    (built in) and decodes half inference's eager tokens."""
    model = _model(token_shift=False)
    ids, bias = torch.randint(0, 37, (1, 4)), torch.randn(1, 40, 32)
    model.compile_decoding(ahead_of_time=True)
    with torch.inference_mode():
        caches = model.new_caches(1, 8)
        model(ids, caches=caches, token_bias=bias[:, :4])
        one = ids[:, :1]
        model(one, caches=caches, start=4, token_bias=bias[:, 4:5])  # builds the library
        with torch.no_grad():
            model.head.weight.mul_(-1)
        stepped = model(one, caches=caches, start=5, token_bias=bias[:, 5:6])
    eager = copy.deepcopy(model)  # a copy's steps are its own (none built yet)
    assert eager._aot.model is eager and not eager._aot._libraries
    eager.compile_decoding(False)
    with torch.inference_mode():
        seq = torch.cat([ids, one, one], 1)
        want = eager(seq, token_bias=bias[:, :6])[:, -1:]
    assert torch.allclose(stepped, want, atol=1e-5)

    model.compile_decoding(False).half_inference()
    eager_half = _decode(model, ids, bias, 12)
    model.compile_decoding(ahead_of_time=True)
    assert torch.equal(_decode(model, ids, bias, 12), eager_half)
    assert model._aot.failed is None and model._aot._libraries


def test_a_step_reads_only_the_written_cache_positions():
    """Exported one-token steps attend over the positions written so far, not the whole capacity
    (`dialect.nn.blocks.ATTEND_WRITTEN_ONLY`): NaN in the unwritten part of the caches, which a
    masked read of the whole buffer would carry into the weighted sum, leaves the logits equal to
    a full forward's."""
    model = _model(token_shift=False)
    ids, bias = torch.randint(0, 37, (1, 6)), torch.randn(1, 40, 32)
    model.compile_decoding(ahead_of_time=True)
    with torch.inference_mode():
        want = model(ids, token_bias=bias[:, :6])[:, -1:]
        caches = model.new_caches(1, 16)
        model(ids[:, :5], caches=caches, token_bias=bias[:, :5])
        for cache in caches:
            cache.k[:, :, 6:] = float("nan")
            cache.v[:, :, 6:] = float("nan")
        got = model(ids[:, 5:], caches=caches, start=5, token_bias=bias[:, 5:6])
    assert model._aot._libraries
    assert torch.allclose(got, want, atol=1e-5)
