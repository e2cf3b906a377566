"""DecoderLM: cached decoding (eager, fixed-shape caches, compiled) equals recomputation, prefix
conditioning learns, CFG batches, I/O."""

from __future__ import annotations

import pytest
import torch

import dialect.lm.decoding as lm_module  # generate and its sampling live here
from dialect.lm import DecoderLM, LMConfig, SamplingConfig, apply_cfg
from dialect.lm.recall import recall_batch
from dialect.nn.blocks import StaticKVCache

GREEDY = SamplingConfig(temperature=0.0)


def _model(**overrides) -> DecoderLM:
    cfg = {"vocab_size": 37, "dim": 32, "depth": 2, "heads": 4, "max_len": 64, "prefix_dim": 12}
    cfg.update(overrides)
    return DecoderLM(LMConfig(**cfg)).eval()


def _prefix(model: DecoderLM, batch: int = 2, length: int = 3) -> torch.Tensor:
    return torch.randn(batch, length, model.config.prefix_dim or model.config.dim)


def _sharpen(model: DecoderLM) -> DecoderLM:
    """Scale the head so random-init logits have clear winners: greedy ties would make the
    cached/uncached comparison depend on float rounding rather than on the cache."""
    with torch.no_grad():
        model.head.weight.mul_(20)
    return model


@pytest.mark.parametrize(
    "positions, qk_norm, token_shift",
    [("rope", False, False), ("learned", True, False), ("rope", False, True)],
)
def test_full_forward_equals_incremental_cached_logits(positions, qk_norm, token_shift):
    model = _model(positions=positions, qk_norm=qk_norm, token_shift=token_shift)
    prefix, ids = _prefix(model), torch.randint(0, 37, (2, 9))
    full = model(ids, prefix)  # (2, 10, V): row t predicts ids[t], row 9 the next token
    assert full.shape == (2, 10, 37)
    caches = model.new_caches(2, 12, "cpu", torch.float32)
    # prefill the prefix and 3 ids, then a chunk of 2 (exercises the offset causal mask), then 1 by 1
    parts = [model(ids[:, :3], prefix, caches=caches)]
    parts.append(model(ids[:, 3:5], caches=caches, start=6))
    parts += [model(ids[:, t : t + 1], caches=caches, start=3 + t) for t in range(5, 9)]
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_logit_rows_predict_the_documented_tokens():
    """Without a prefix row t sees ids[:t+1]; with one, row 0 sees only the prefix."""
    model = _model()
    ids, prefix = torch.randint(0, 37, (1, 6)), _prefix(model, 1)
    changed = ids.clone()
    changed[0, 4] = (ids[0, 4] + 1) % 37
    a, b = model(ids), model(changed)
    assert a.shape == (1, 6, 37)
    assert torch.equal(a[:, :4], b[:, :4]) and not torch.allclose(a[:, 4:], b[:, 4:])
    a, b = model(ids, prefix), model(changed, prefix)
    assert a.shape == (1, 7, 37)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:])
    # row 0 with a prefix is the prediction from the prefix alone
    assert torch.allclose(a[:, 0], model(None, prefix)[:, 0], atol=1e-6)


@pytest.mark.parametrize("with_prefix", [True, False])
def test_last_only_is_the_last_row(with_prefix):
    """Decoding's prefill asks for the next token's logits only: the same as the full forward's last row."""
    model = _model()
    ids, prefix = torch.randint(0, 37, (2, 6)), _prefix(model) if with_prefix else None
    last = model(ids, prefix, last_only=True)
    assert last.shape == (2, 1, 37)
    assert torch.allclose(last, model(ids, prefix)[:, -1:], atol=1e-6)


@pytest.mark.parametrize("with_prefix", [True, False])
def test_select_returns_exactly_the_selected_rows(with_prefix):
    """Training asks for its loss positions only: the full forward's rows at `select`, in order."""
    model = _model()
    ids, prefix = torch.randint(0, 37, (2, 6)), _prefix(model) if with_prefix else None
    full = model(ids, prefix)
    select = torch.rand(full.shape[:2]) < 0.5
    select[0, 0] = True  # at least one row
    got = model(ids, prefix, select=select)
    assert got.shape == (int(select.sum()), 37)
    assert torch.allclose(got, full[select], atol=1e-6)
    assert model(ids, prefix, select=torch.zeros_like(select)).shape == (0, 37)
    # the top block computes the selected rows only; the gradients are those of the full forward's rows
    grads = []
    for logits in (lambda: model(ids, prefix, select=select), lambda: model(ids, prefix)[select]):
        model.zero_grad()
        logits().logsumexp(-1).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads, strict=True))
    with pytest.raises(ValueError, match="select must be a bool tensor"):
        model(ids, prefix, select=select.float())
    with pytest.raises(ValueError, match="select must be a bool tensor"):
        model(ids, prefix, select=select[:, 1:])


@pytest.mark.parametrize("num_tokens", [1, 5, 20])
@pytest.mark.parametrize("with_prefix", [True, False])
def test_greedy_cached_equals_uncached(num_tokens, with_prefix):
    model = _sharpen(_model())
    prefix = _prefix(model) if with_prefix else None
    ids = torch.randint(0, 37, (2, 3))
    cached = model.generate(prefix, num_tokens, GREEDY, ids=ids)
    uncached = model.generate(prefix, num_tokens, GREEDY, ids=ids, use_cache=False)
    assert cached.shape == (2, num_tokens)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_greedy_cached_equals_uncached_with_cfg(positions):
    model = _sharpen(_model(positions=positions))
    prefix, uncond = _prefix(model, 3), _prefix(model, 3)
    cfg = SamplingConfig(temperature=0.0, cfg_scale=3.0)
    cached = model.generate(prefix, 12, cfg, uncond_prefix=uncond)
    assert torch.equal(cached, model.generate(prefix, 12, cfg, uncond_prefix=uncond, use_cache=False))
    # guidance changes the result (else the test above could not tell guidance was applied)
    assert not torch.equal(cached, model.generate(prefix, 12, GREEDY))


@pytest.mark.parametrize("guided", [False, True])
def test_token_bias_is_fed_with_its_token_cached_or_not(guided):
    """token_bias[:, j] is added to the j-th fed id (given ids first, then generated tokens)."""
    model = _sharpen(_model())
    prefix, uncond = _prefix(model), _prefix(model)
    ids = torch.randint(0, 37, (2, 2))
    bias = torch.randn(2, 2 + 8 - 1, model.config.dim)
    ubias = torch.randn_like(bias)
    cfg = SamplingConfig(temperature=0.0, cfg_scale=3.0 if guided else 1.0)
    kw = dict(ids=ids, token_bias=bias, uncond_prefix=uncond, uncond_token_bias=ubias)
    cached = model.generate(prefix, 8, cfg, **kw)
    assert torch.equal(cached, model.generate(prefix, 8, cfg, use_cache=False, **kw))
    assert not torch.equal(cached, model.generate(prefix, 8, cfg, ids=ids, uncond_prefix=uncond))
    if not guided:  # teacher-forced on its own output with the same bias: the same argmax
        seq = torch.cat([ids, cached], dim=1)
        logits = model(seq[:, :-1], prefix, token_bias=bias)[:, ids.shape[1] :]
        assert torch.equal(logits.argmax(-1), cached)


def test_cfg_matches_a_reference_with_separate_passes():
    """The 2B batch gives what running cond and uncond separately and mixing their logits gives."""
    model = _sharpen(_model())
    prefix, uncond = _prefix(model), _prefix(model)
    scale = 2.5
    ids = torch.empty(2, 0, dtype=torch.long)
    for _ in range(6):
        mixed = apply_cfg(model(ids, prefix)[:, -1], model(ids, uncond)[:, -1], scale)
        ids = torch.cat([ids, mixed.argmax(-1, keepdim=True)], dim=1)
    out = model.generate(prefix, 6, SamplingConfig(temperature=0.0, cfg_scale=scale), uncond_prefix=uncond)
    assert torch.equal(out, ids)


def test_cfg_rows_are_decoded_together_one_forward_per_step():
    model = _model()
    batches = []
    model.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    prefix = _prefix(model, batch=3)
    model.generate(prefix, 7, SamplingConfig(cfg_scale=2.0), uncond_prefix=torch.zeros_like(prefix))
    assert batches == [6] * 7  # prefill + 6 decode steps, each with batch 2B
    batches.clear()
    model.generate(prefix, 7, SamplingConfig(), uncond_prefix=torch.zeros_like(prefix))
    assert batches == [3] * 7  # scale 1: no unconditional rows


def test_allowed_restricts_samples():
    model = _model()
    prefix = _prefix(model, batch=8)
    g = torch.Generator().manual_seed(0)
    out = model.generate(prefix, 10, SamplingConfig(), generator=g, allowed=slice(30, 37))
    assert out.min() >= 30
    out = model.generate(prefix, 10, SamplingConfig(), generator=g, allowed=torch.tensor([2, 5]))
    assert set(out.unique().tolist()) <= {2, 5}
    guided = SamplingConfig(temperature=0.0, cfg_scale=2.0)
    out = model.generate(prefix, 4, guided, uncond_prefix=-prefix, allowed=slice(10, 12))
    assert set(out.unique().tolist()) <= {10, 11}


def test_generator_reproduces_samples():
    model = _model()
    prefix, cfg = _prefix(model), SamplingConfig(top_p=0.9)
    a = model.generate(prefix, 8, cfg, generator=torch.Generator().manual_seed(1))
    b = model.generate(prefix, 8, cfg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_micro_lm_learns_a_prefix_conditioned_pattern():
    """Sequences count up (prefix A) or down (prefix B) mod 16 from a random start: the loss falls,
    then greedy decoding from each prefix continues its own pattern."""
    torch.manual_seed(0)
    V, T, B = 16, 10, 32
    model = DecoderLM(LMConfig(vocab_size=V, dim=32, depth=2, heads=4, max_len=16, prefix_dim=8))
    conds = torch.randn(2, 1, 8)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    mask = torch.ones(B, T)
    mask[:, 0] = 0  # the start is random: predicting ids[0] from the prefix is not learnable
    losses = []
    for _ in range(50):
        start, down = torch.randint(0, V, (B, 1), generator=g), torch.randint(0, 2, (B,), generator=g)
        ids = (start + (1 - 2 * down[:, None]) * torch.arange(T)) % V
        loss = model.next_token_loss(ids, conds[down], loss_mask=mask)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.1 < 2.0 < losses[0]
    first = torch.tensor([[3], [3]])
    out = model.generate(conds, 8, GREEDY, ids=first)
    assert out[0].tolist() == [4, 5, 6, 7, 8, 9, 10, 11]
    assert out[1].tolist() == [2, 1, 0, 15, 14, 13, 12, 11]


def test_next_token_loss_targets_and_mask():
    model = _model()
    ids, prefix = torch.randint(0, 37, (2, 5)), _prefix(model)
    logits = model(ids, prefix)[:, :-1]  # rows 0..4 predict ids[0..4]
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten())
    assert torch.allclose(model.next_token_loss(ids, prefix), expected, atol=1e-6)
    logits = model(ids)[:, :-1]  # rows 0..3 predict ids[1..4]
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    assert torch.allclose(model.next_token_loss(ids), expected, atol=1e-6)
    mask = torch.zeros(2, 5)
    mask[1, 3] = 1
    one = torch.nn.functional.cross_entropy(model(ids, prefix)[1:, 3], ids[1:, 3])
    assert torch.allclose(model.next_token_loss(ids, prefix, loss_mask=mask), one, atol=1e-6)


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_round_trip(tmp_path, tie):
    model = _model(tie_embeddings=tie, positions="learned" if tie else "rope")
    prefix, ids = _prefix(model), torch.randint(0, 37, (2, 6))
    model.save_pretrained(tmp_path / "lm")
    loaded = DecoderLM.from_pretrained(tmp_path / "lm").eval()
    assert loaded.config == model.config
    assert torch.equal(loaded(ids, prefix), model(ids, prefix))
    if tie:
        assert loaded.head.weight is loaded.tok_emb.weight


def test_prefix_at_model_width_without_projection():
    model = _model(prefix_dim=0)
    assert model.prefix_proj is None
    assert model(torch.randint(0, 37, (2, 4)), torch.randn(2, 3, 32)).shape == (2, 5, 37)


def test_logits_reach_sampling_in_fp32_under_autocast(monkeypatch):
    model = _model()
    seen = []

    def spy(logits, cfg, generator=None):
        seen.append(logits.dtype)
        return logits.argmax(-1)

    monkeypatch.setattr(lm_module, "sample", spy)
    prefix = _prefix(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(prefix, 3, SamplingConfig(cfg_scale=2.0), uncond_prefix=prefix * 0)
        loss = model.next_token_loss(torch.randint(0, 37, (2, 4)), prefix)
    assert out.shape == (2, 3) and seen == [torch.float32] * 3
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_bad_inputs_raise():
    model = _model()
    prefix = _prefix(model)
    with pytest.raises(ValueError, match="positions"):
        _model(positions="alibi")
    with pytest.raises(ValueError, match="heads"):
        _model(dim=30)
    with pytest.raises(ValueError, match="prefix must be"):
        model(torch.zeros(2, 3, dtype=torch.long), torch.randn(2, 3, 32))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(2, 70, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        model.generate(prefix, 63, GREEDY)  # 3 + 63 - 1 > 64
    with pytest.raises(ValueError, match="caches"):
        model(torch.zeros(2, 1, dtype=torch.long), caches=model.new_caches(2, 8), start=1)
    with pytest.raises(ValueError, match="uncond_prefix"):
        model.generate(prefix, 2, SamplingConfig(cfg_scale=2.0))
    with pytest.raises(ValueError, match="uncond_prefix"):
        model.generate(prefix, 2, SamplingConfig(cfg_scale=2.0), uncond_prefix=prefix[:, :2])
    with pytest.raises(ValueError, match="token ids"):
        model.generate(prefix, 2, GREEDY, ids=torch.full((2, 1), 37))
    with pytest.raises(ValueError, match="num_tokens"):
        model.generate(prefix, 0, GREEDY)
    with pytest.raises(ValueError, match="prefix or"):
        model.generate(None, 2, GREEDY)
    with pytest.raises(ValueError, match="at least 2"):
        model.next_token_loss(torch.zeros(2, 1, dtype=torch.long))


def _static(model: DecoderLM, batch: int, capacity: int) -> list[StaticKVCache]:
    c = model.config
    return StaticKVCache.empty_stack(c.depth, batch, c.heads, capacity, model.head_dim, "cpu", torch.float32)


@pytest.mark.parametrize("positions, token_shift", [("rope", False), ("learned", False), ("rope", True)])
def test_static_caches_equal_the_full_forward(positions, token_shift):
    """Prefill, a 2-token chunk (the mask keeps it causal), then one by one: the same logits."""
    model = _sharpen(_model(positions=positions, token_shift=token_shift))
    prefix, ids = torch.randn(2, 3, 12), torch.randint(0, 37, (2, 9))
    with torch.no_grad():
        full = model(ids, prefix)
        caches = _static(model, 2, 16)
        parts = [model(ids[:, :3], prefix, caches=caches)]
        parts.append(model(ids[:, 3:5], caches=caches, start=6))
        parts += [model(ids[:, t : t + 1], caches=caches, start=3 + t) for t in range(5, 9)]
    assert caches[0].length == 12 and all(c.pos is caches[0].pos for c in caches)
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("static", [False, True])
def test_last_only_prefills_keep_every_key_for_the_steps_after(static):
    """With `last_only` the top block attends from the last query alone but still caches every
    position's keys and values: a last-only prefill, then a last-only 2-token chunk (the offset
    mask), then single steps give the full forward's rows at those positions."""
    model = _sharpen(_model(depth=3))
    prefix, ids = torch.randn(2, 3, 12), torch.randint(0, 37, (2, 9))
    with torch.no_grad():
        full = model(ids, prefix)  # row t predicts ids[t]
        caches = _static(model, 2, 16) if static else model.new_caches(2, 16, "cpu", torch.float32)
        first = model(ids[:, :3], prefix, caches=caches, last_only=True)
        chunk = model(ids[:, 3:5], caches=caches, start=6, last_only=True)
        steps = [model(ids[:, t : t + 1], caches=caches, start=3 + t) for t in range(5, 9)]
    assert first.shape == chunk.shape == (2, 1, 37)
    assert torch.allclose(first, full[:, 3:4], atol=1e-5) and torch.allclose(chunk, full[:, 5:6], atol=1e-5)
    assert torch.allclose(torch.cat(steps, dim=1), full[:, 6:], atol=1e-5)
    with pytest.raises(ValueError, match="causal"):
        model.stack.blocks[0].attn(torch.randn(1, 4, 32), last_only=True)


def test_static_cache_refuses_a_wrong_start_or_overflow():
    model = _sharpen(_model())
    caches = _static(model, 1, 4)
    with torch.no_grad():
        model(torch.randint(0, 37, (1, 3)), caches=caches)
        with pytest.raises(ValueError, match="start=2"):
            model(torch.randint(0, 37, (1, 1)), caches=caches, start=2)
        with pytest.raises(ValueError, match="cache full"):
            model(torch.randint(0, 37, (1, 2)), caches=caches, start=3)


@pytest.mark.parametrize("token_shift", [False, True])
def test_compiled_decoding_equals_eager_with_guidance_and_token_bias(token_shift):
    """The AR de-tokenizer's case: prefix, classifier-free guidance (2B rows), a bias per fed token;
    with token shift the compiled step carries the previous input vector in the cache's buffer."""
    model = _sharpen(_model(token_shift=token_shift))
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
    model = _sharpen(_model(prefix_dim=0))
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


def test_half_inference_decodes_the_same_greedy_tokens_eager_and_compiled():
    """Half inference moves the logits by half-precision rounding only: with clear winners the
    greedy tokens equal fp32 decoding's, with guidance, eager and compiled."""
    model = _sharpen(_model())
    prefix, uncond = torch.randn(2, 3, 12), torch.randn(2, 3, 12)
    cfg = SamplingConfig(temperature=0.0, cfg_scale=2.0)

    def run() -> torch.Tensor:
        return model.generate(prefix, 12, cfg, uncond_prefix=uncond)

    fp32 = run()
    ids = torch.randint(0, 37, (2, 5))
    with torch.inference_mode():
        ref = model(ids, prefix=prefix)
    model.half_inference()
    try:
        with torch.inference_mode():
            half_logits = model(ids, prefix=prefix)
        half = run()
        model.compile_decoding()
        compiled = run()
    finally:
        model.compile_decoding(False).half_inference(False)
    assert torch.equal(half, fp32) and torch.equal(compiled, fp32)
    assert not torch.equal(half_logits, ref)  # the half copies were used, within their rounding
    assert (half_logits - ref).norm() / ref.norm() < 3e-2
    assert torch.equal(run(), fp32)


def _recall_accuracy(token_shift: bool, steps: int = 300, keys: int = 16, pairs: int = 4) -> float:
    """A micro LM trained on associative recall ([k1 v1 ... kP vP SEP kq] -> vq) from scratch."""
    torch.manual_seed(0)
    config = LMConfig(vocab_size=2 * keys + 1, dim=64, depth=2, heads=2, max_len=16, token_shift=token_shift)
    model = DecoderLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = recall_batch(32, pairs, keys, gen)
        loss = torch.nn.functional.cross_entropy(model(x)[:, -1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, y = recall_batch(512, pairs, keys, gen)
        return (model(x)[:, -1].argmax(-1) == y).float().mean().item()


def test_token_shift_lets_a_micro_lm_learn_associative_recall():
    """`LMConfig.token_shift`: matching "the token after key k" needs no previous-token head, so
    300 steps solve recall with it (1.00 here over three seeds) and leave it near chance without
    (0.30-0.32; chance 0.25): the contrast of experiments/results/recall_probe.md, in miniature."""
    assert _recall_accuracy(token_shift=True) > 0.9
    assert _recall_accuracy(token_shift=False) < 0.6


def test_compiled_decoding_past_the_recompile_limit_warns_and_decodes_eagerly():
    """Each (batch, capacity) is a compiled entry of the one step all DecoderLMs share: compiling
    raises dynamo's limit, and a shape past it decodes eagerly on its fixed-shape caches (the same
    tokens) after one warning, instead of failing."""
    from dialect.nn.compile import RECOMPILE_LIMIT

    model = _sharpen(_model(prefix_dim=0, max_len=300))
    ids = {n: torch.randint(0, 37, (1, n)) for n in (4, 140)}  # capacities 128 and 256
    eager = {n: model.generate(None, 6, GREEDY, ids=x) for n, x in ids.items()}
    torch._dynamo.reset()
    model.compile_decoding()
    try:
        assert torch._dynamo.config.recompile_limit >= RECOMPILE_LIMIT
        # torch's own patch: pytest's monkeypatch may delete a config entry on undo
        with torch._dynamo.config.patch(recompile_limit=1):
            assert torch.equal(model.generate(None, 6, GREEDY, ids=ids[4]), eager[4])  # compiled
            with pytest.warns(UserWarning, match="recompile limit"):
                past = model.generate(None, 6, GREEDY, ids=ids[140])  # a second shape: eager
        assert torch.equal(past, eager[140])
        assert isinstance(model.new_caches(1, 200)[0], StaticKVCache)
    finally:
        model.compile_decoding(False)
        torch._dynamo.reset()


def test_decoding_steps_skip_the_guards_after_the_first_step_only_inside_the_scope():
    """Inside `decoding_steps` the first compiled step runs with every guard and the later ones with
    none but those telling entries apart: a guarded switch flipped between steps goes unseen there
    (the condition the scope documents) and is seen again outside it; `generate` decodes the same
    tokens through the scope as eagerly."""
    import dialect.nn.blocks as blocks

    model = _sharpen(_model(prefix_dim=0))
    ids = torch.randint(0, 37, (1, 4))
    eager = model.generate(None, 8, GREEDY, ids=ids)
    torch._dynamo.reset()
    model.compile_decoding()

    def sdpa_in_one_step(caches, start: int) -> bool:
        with torch.profiler.profile() as prof:
            model(torch.ones(1, 1, dtype=torch.long), caches=caches, start=start)
        return any("scaled_dot_product" in e.key for e in prof.key_averages())

    saved = blocks.ONE_QUERY_ATTENTION
    try:
        assert torch.equal(model.generate(None, 8, GREEDY, ids=ids), eager)
        with torch.inference_mode():
            caches = model.new_caches(1, 16)
            model(ids, caches=caches)  # eager prefill
            with model.decoding_steps(caches):
                assert not sdpa_in_one_step(caches, 4)  # fused attention, all guards checked
                blocks.ONE_QUERY_ATTENTION = False  # a guarded global: needs another trace
                assert not sdpa_in_one_step(caches, 5)  # unseen: the guards are skipped
            assert model._trusted is None
            assert sdpa_in_one_step(caches, 6)  # outside the scope the guard catches it
    finally:
        blocks.ONE_QUERY_ATTENTION = saved
        model.compile_decoding(False)
        torch._dynamo.reset()


def test_a_step_whose_input_is_of_another_kind_than_the_first_is_checked_in_full():
    """Inside `decoding_steps`, ids made outside `torch.inference_mode` (a normal tensor) and ids
    made inside it (an inference tensor) need different compiled entries: a step fed the other
    kind than the first is checked in full instead of failing under the skipped guards."""
    model = _sharpen(_model(prefix_dim=0))
    ids = torch.randint(0, 37, (1, 4))
    eager = model.generate(None, 3, GREEDY, ids=ids)
    torch._dynamo.reset()
    model.compile_decoding()
    try:
        first = eager[:, :1].clone()  # a normal tensor, fed inside inference mode
        with torch.inference_mode():
            caches = model.new_caches(1, 16)
            model(ids, caches=caches)
            with model.decoding_steps(caches):
                logits = model(first, caches=caches, start=4)
                tok = logits[:, -1].argmax(-1, keepdim=True)  # an inference tensor
                logits = model(tok, caches=caches, start=5)
        assert torch.equal(torch.cat([tok, logits[:, -1].argmax(-1, keepdim=True)], 1), eager[:, 1:])
    finally:
        model.compile_decoding(False)
        torch._dynamo.reset()


def test_threads_take_turns_so_no_step_runs_under_another_threads_skipped_guards():
    """The guard-skipping stance is process-wide: while thread A runs a step with its guards
    skipped, thread B's first step (a new cache shape, which must be checked and compiled) waits
    for it instead of running under A's stance; both decode their eager tokens, and the stance
    checks guards again afterwards."""
    import threading
    import time

    model = _sharpen(_model(prefix_dim=0, max_len=300))
    prompts = {"A": torch.randint(0, 37, (1, 4)), "B": torch.randint(0, 37, (1, 140))}  # capacity 128, 256
    eager = {name: model.generate(None, 8, GREEDY, ids=x) for name, x in prompts.items()}
    torch._dynamo.reset()
    model.compile_decoding()
    compiled, a_skipping, stances, results = model._step, threading.Event(), {"A": [], "B": []}, {}

    def step(ids, caches, token_bias):  # records the stance each step of each thread runs under
        name = threading.current_thread().name
        stances[name].append(torch._dynamo.eval_frame._stance.skip_guard_eval_unsafe)
        if name == "A" and stances["A"][-1] and not a_skipping.is_set():
            a_skipping.set()
            time.sleep(0.3)  # B reaches its first step meanwhile
        return compiled(ids, caches, token_bias)

    def run(name: str) -> None:
        if name == "B":
            a_skipping.wait(timeout=30)
        results[name] = model.generate(None, 8, GREEDY, ids=prompts[name])

    model._step = step
    threads = [threading.Thread(target=run, args=(name,), name=name) for name in prompts]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        model.compile_decoding(False)
        torch._dynamo.reset()
    assert a_skipping.is_set() and stances["A"][:2] == [False, True]  # A: first step checked, then skipped
    assert stances["B"][0] is False  # B's first step ran under its own, checking stance
    assert all(torch.equal(results[name], eager[name]) for name in prompts)
    assert not torch._dynamo.eval_frame._stance.skip_guard_eval_unsafe
