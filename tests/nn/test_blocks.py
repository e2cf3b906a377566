import pytest
import torch
import torch.nn.functional as F

from dialect.encoders.vit import ViT, ViTConfig
from dialect.nn.blocks import MATH_ATTENTION_MAX_LEN, Stack, attention, one_query_attention


def test_init_scales_the_residual_projections_with_depth():
    torch.manual_seed(0)
    stack = Stack(dim=256, depth=8, heads=4)
    block = stack.blocks[0]
    shrink = 0.8796  # std of N(0, 1) truncated at +-2
    assert abs(block.attn.qkv.weight.std().item() - 0.02 * shrink) < 0.001
    residual = 0.02 / (2 * 8) ** 0.5
    for w in (block.attn.proj.weight, block.mlp.w2.weight):
        assert abs(w.std().item() - residual * shrink) < 0.05 * residual
        assert w.abs().max().item() <= 2 * residual + 1e-7


@pytest.mark.parametrize("pool", ["max", "mean", "map"])
def test_vit_pooling_options(pool):
    vit = ViT(ViTConfig(image_size=16, patch_size=4, dim=32, depth=1, heads=2, pool=pool))
    x = torch.randn(3, 3, 16, 16)
    out = vit(x)
    assert out.shape == (3, 32)
    grid = vit.grid_features(x)
    if pool == "max":
        assert torch.equal(out, grid.amax(dim=(1, 2)))
    elif pool == "mean":
        assert torch.allclose(out, grid.mean(dim=(1, 2)))
    else:
        out.sum().backward()
        assert vit.attn_pool.query.grad is not None


def test_vit_rejects_an_unknown_pool():
    with pytest.raises(ValueError, match="pool"):
        ViT(ViTConfig(pool="median"))


@pytest.mark.parametrize("patch", [2, 4, 8])
def test_conv_stem_keeps_the_patch_grid(patch):
    vit = ViT(ViTConfig(image_size=32, patch_size=patch, dim=32, depth=1, heads=2, stem="conv"))
    assert vit.grid_features(torch.randn(2, 3, 32, 32)).shape == (2, 32 // patch, 32 // patch, 32)
    convs = [m for m in vit.patch if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == patch.bit_length() - 1 and all(c.stride == (2, 2) for c in convs)
    # each output cell sees beyond its own patch (overlapping filters), unlike the linear patchify
    x = torch.zeros(1, 3, 32, 32, requires_grad=True)
    vit.patch(x)[0, :, 1, 1].sum().backward()  # the cell of patch (1, 1): rows patch .. 2 patch - 1
    assert x.grad[0, :, patch - 1, :].abs().sum() > 0  # ... also sees the last row of the patch above


def test_conv_stem_needs_a_power_of_two_patch():
    with pytest.raises(ValueError, match="stem"):
        ViT(ViTConfig(patch_size=6, stem="conv"))
    with pytest.raises(ValueError, match="stem"):
        ViT(ViTConfig(stem="hexagonal"))


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for backward while `fn()` runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_activation_checkpointing_keeps_less_and_changes_nothing():
    from dialect.nn.blocks import enable_checkpointing

    torch.manual_seed(0)
    plain = Stack(dim=64, depth=4, heads=4).train()
    ckpt = Stack(dim=64, depth=4, heads=4).train()
    ckpt.load_state_dict(plain.state_dict())
    assert enable_checkpointing(ckpt) == 4
    x = torch.randn(2, 32, 64)
    out = {}
    for name, model in (("plain", plain), ("ckpt", ckpt)):
        saved = _saved_bytes(lambda m=model, n=name: out.__setitem__(n, m(x, causal=True)))
        out[name].square().mean().backward()
        out[name + "_saved"] = saved
    torch.testing.assert_close(out["ckpt"], out["plain"], rtol=0, atol=0)
    for a, b in zip(plain.parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-6, atol=1e-7)
    assert out["ckpt_saved"] < 0.3 * out["plain_saved"], (out["ckpt_saved"], out["plain_saved"])
    with torch.no_grad():  # inference never recomputes (nothing is saved anyway)
        torch.testing.assert_close(ckpt.eval()(x), plain.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length", [12, MATH_ATTENTION_MAX_LEN + 8])
def test_attention_backends_agree_in_values_and_gradients(causal, length):
    """bf16 training on a short sequence takes SDPA's math path (faster there); its outputs and
    gradients match the default kernel's, as do those of every other case."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, length, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    out = attention(q, k, v, None, causal)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=3e-2)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g.float(), r.float(), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("mask_shape", [None, (1, 40), (2, 1, 1, 40)])
def test_one_query_attention_equals_sdpa_and_replaces_it_in_traced_steps(mask_shape):
    """A single query's attention as two reductions equals SDPA's under every mask layout a
    decoding step passes; traced (a compiled decoding step), `attention` takes it and calls no
    SDPA kernel, while eager code keeps SDPA."""
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 1, 16), torch.randn(2, 4, 40, 16), torch.randn(2, 4, 40, 16)
    mask = None if mask_shape is None else torch.rand(mask_shape) < 0.7
    if mask is not None:
        mask[..., 0] = True  # every query sees at least one key
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(one_query_attention(q, k, v, mask), ref, rtol=1e-5, atol=1e-6)
    step = torch.compile(attention, fullgraph=True, dynamic=False)
    for fn in (attention, step):
        with torch.inference_mode(), torch.profiler.profile() as prof:
            got = fn(q, k, v, mask, False)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
        sdpa = any("scaled_dot_product" in e.key for e in prof.key_averages())
        assert sdpa == (fn is attention), [e.key for e in prof.key_averages()]


def test_one_query_attention_accumulates_bf16_inputs_in_fp32_like_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, n, 16) * 3 for n in (1, 300, 300))
    ref = F.scaled_dot_product_attention(q, k, v)
    half = [t.bfloat16() for t in (q, k, v)]
    sdpa_err = (F.scaled_dot_product_attention(*half).float() - ref).norm() / ref.norm()
    ours = one_query_attention(*half, None)
    assert ours.dtype == torch.bfloat16
    assert (ours.float() - ref).norm() / ref.norm() <= 1.2 * sdpa_err
