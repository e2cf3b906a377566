import pytest
import torch

from dialect.encoders.vit import ViT, ViTConfig
from dialect.nn.blocks import Stack


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
