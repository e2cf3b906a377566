"""TA-Tok's scale-adaptive pooling on grids the scale does not divide (the paper's 27x27 at s=2)."""

import torch
import torch.nn.functional as F

from dialect.encoders.vit import ViTConfig
from dialect.quant import VQConfig
from dialect.tokenizers.tatok import TATok, TATokConfig, pool_grid, unpool_grid


def test_pool_27_grid_gives_the_papers_counts_and_covers_every_cell():
    x = torch.randn(2, 27, 27, 5)
    assert [pool_grid(x, s).shape[1:3] for s in (1, 2, 3)] == [(27, 27), (13, 13), (9, 9)]
    # every input cell reaches some token at s = 2 (plain kernel=stride=2 pooling drops row/col 26)
    probe = torch.zeros(1, 27, 27, 1, requires_grad=True)
    pool_grid(probe, 2).sum().backward()
    assert (probe.grad > 0).all()


def test_divisible_grids_are_exactly_kernel_stride_pooling_and_repetition():
    x = torch.randn(2, 8, 8, 3)
    ref = F.avg_pool2d(x.permute(0, 3, 1, 2), 2, 2).permute(0, 2, 3, 1)
    assert torch.equal(pool_grid(x, 2), ref)
    y = torch.randn(2, 4, 4, 3)
    assert torch.equal(unpool_grid(y, 8), y.repeat_interleave(2, 1).repeat_interleave(2, 2))


def test_unpool_13_to_27_spreads_token_i_over_the_cells_that_map_to_it():
    y = torch.arange(13.0).view(1, 13, 1, 1).expand(1, 13, 13, 1)
    rows = unpool_grid(y, 27)[0, :, 0, 0].long().tolist()
    assert rows == [j * 13 // 27 for j in range(27)] and set(rows) == set(range(13))


def test_tatok_on_a_27x27_grid_encodes_and_decodes_every_scale():
    torch.manual_seed(0)
    cfg = TATokConfig(
        teacher=ViTConfig(image_size=54, patch_size=2, dim=16, depth=1, heads=2),
        pool_scales=[1, 2, 3], scale_weights=[1.0, 1.0, 1.0],
        vq=VQConfig(dim=384, num_codes=32), decoder_dim=16, decoder_depth=1, decoder_heads=2,
    )  # fmt: skip
    tok = TATok(cfg).eval()
    images = torch.rand(1, 3, 54, 54) * 2 - 1
    for scale, n in enumerate((729, 169, 81)):
        ids = tok.encode_ids(images, scale)
        assert ids.shape == (1, n)
        assert tok.decode_ids(ids, scale).shape == (1, 27, 27, 16)
