import pytest
import torch

from dialect.core.errors import DialectError
from dialect.detok.condition import TATokCondition

from .micro import tatok_cfg


def _images(n=3, seed=1):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def cond():
    torch.manual_seed(0)
    return TATokCondition(tatok_cfg(), dim=24, drop=0.1)


def test_condition_tokens_live_on_the_full_grid_for_every_scale(cond):
    x = _images()
    assert cond.num_tokens == 16 and cond.feature_dim == 32
    for scale, n in enumerate([16, 4, 1]):
        ids = cond.encode_ids(x, scale)
        assert ids.shape == (3, n)
        feats = cond.features(ids, scale)
        assert feats.shape == (3, 16, 32) and not feats.requires_grad
        tokens = cond.from_ids(ids, scale)
        assert tokens.shape == (3, 16, 24)
        torch.testing.assert_close(tokens, cond(x, scale))
    # the scale embedding tells scales apart even for identical features
    f = cond.features(cond.encode_ids(x, 0), 0)
    assert not torch.allclose(cond.project(f, 0), cond.project(f, 1))
    with pytest.raises(DialectError, match="condition features"):
        cond.project(f[:, :8], 0)
    with pytest.raises(DialectError, match="scale"):
        cond.from_ids(cond.encode_ids(x, 0), 3)


def test_dropout_rate_is_honoured_and_uses_the_null_embedding():
    torch.manual_seed(0)
    c = TATokCondition(tatok_cfg(), dim=8, drop=0.3)
    tokens = torch.randn(4000, 16, 8)
    out = c.dropout(tokens, torch.Generator().manual_seed(0))
    null = c.null(4000)
    assert null.shape == tokens.shape
    is_null = (out == null).flatten(1).all(1)
    is_kept = (out == tokens).flatten(1).all(1)
    assert bool((is_null | is_kept).all())  # whole samples are replaced, never parts
    rate = is_null.float().mean().item()
    assert abs(rate - 0.3) < 0.025, rate  # 3.4 sigma of a binomial(4000, 0.3)
    # p = 0 drops nothing
    c.drop = 0.0
    assert torch.equal(c.dropout(tokens), tokens)


def test_null_embedding_and_projection_train_tatok_stays_frozen():
    torch.manual_seed(0)
    c = TATokCondition(tatok_cfg(), dim=8, drop=0.5).train()
    assert not c.tatok.training and not c.tatok.teacher.training
    assert all(not p.requires_grad for p in c.tatok.parameters())
    before = {k: v.clone() for k, v in c.tatok.state_dict().items()}
    tokens, scale = c.training_condition(_images(8))
    assert tokens.shape == (8, 16, 8) and 0 <= scale < 3
    tokens.square().sum().backward()
    assert c.proj.weight.grad is not None and c.proj.weight.grad.abs().sum() > 0
    assert c.null_embed.grad is not None
    assert all(p.grad is None for p in c.tatok.parameters())
    assert all(torch.equal(v, before[k]) for k, v in c.tatok.state_dict().items())


def test_scale_draw_follows_the_tatok_weights_or_the_override():
    c = TATokCondition(tatok_cfg(scale_weights=[0.0, 0.0, 1.0]), dim=8)
    assert {c.draw_scale() for _ in range(20)} == {2}
    c = TATokCondition(tatok_cfg(scale_weights=[0.0, 0.0, 1.0]), dim=8, scale_weights=[1.0, 3.0, 0.0])
    g = torch.Generator().manual_seed(0)
    draws = torch.tensor([c.draw_scale(g) for _ in range(2000)])
    assert int((draws == 2).sum()) == 0
    assert abs((draws == 1).float().mean().item() - 0.75) < 0.04
    with pytest.raises(DialectError, match="scale_weights"):
        TATokCondition(tatok_cfg(), dim=8, scale_weights=[1.0, 1.0])
    with pytest.raises(DialectError, match="dropout"):
        TATokCondition(tatok_cfg(), dim=8, drop=1.0)
