"""Codebook sources: the learned baseline and the text-aligned C = L2norm(W E + b)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dialect.core.errors import DialectError
from dialect.quant import LearnedCodebook, TextAlignedCodebook, VectorQuantizer, VQConfig


def text_vq(num_codes=64, dim=384, **kw) -> VectorQuantizer:
    return VectorQuantizer(VQConfig(dim=dim, num_codes=num_codes, codebook="text", **kw))


def test_learned_codebook_shapes_and_normalisation():
    book = LearnedCodebook(32, 8, normalize=True)
    codes = book.codes()
    assert codes.shape == (32, 8) and codes.dtype == torch.float32
    assert torch.allclose(codes.norm(dim=-1), torch.ones(32), atol=1e-6)
    raw = LearnedCodebook(32, 8, normalize=False)
    assert torch.equal(raw.codes(), raw.weight)


def test_text_codebook_is_normalised_projection_of_frozen_rows():
    vq = text_vq(num_codes=16, dim=24)  # De = 384 != D: semi-orthogonal W
    book = vq.codebook
    assert book.embeddings.shape == (16, 384) and not book.embeddings.requires_grad
    assert "codebook.embeddings" in vq.state_dict()  # persistent: the checkpoint carries E
    assert all(p is not book.embeddings for p in vq.parameters())
    w = book.proj.weight
    assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-5)
    with torch.no_grad():
        book.proj.bias.normal_()
    expected = F.normalize(book.embeddings @ w.T + book.proj.bias, dim=-1)
    assert torch.allclose(book.codes(), expected, atol=1e-6)


def test_identity_init_keeps_word_geometry():
    vq = text_vq(num_codes=16, dim=384)
    codes = vq.codebook.codes()
    assert torch.allclose(codes, F.normalize(vq.codebook.embeddings, dim=-1), atol=1e-6)


def test_embeddings_stay_bit_identical_while_w_trains():
    vq = text_vq(num_codes=32, dim=16)
    e0 = vq.codebook.embeddings.clone()
    w0 = vq.codebook.proj.weight.detach().clone()
    opt = torch.optim.Adam(vq.parameters(), lr=1e-2)
    for _ in range(3):
        z = torch.randn(20, 16)
        _, _, aux = vq(z)
        opt.zero_grad()
        aux["loss"].backward()
        assert vq.codebook.proj.weight.grad.abs().sum() > 0
        opt.step()
    assert torch.equal(vq.codebook.embeddings, e0)
    assert not torch.allclose(vq.codebook.proj.weight, w0)


def test_learned_codebook_receives_gradient_on_used_rows():
    vq = VectorQuantizer(VQConfig(dim=8, num_codes=64, codebook="learned"))
    _, ids, aux = vq(torch.randn(10, 8))
    aux["loss"].backward()
    used = torch.zeros(64, dtype=torch.bool)
    used[ids] = True
    grad_rows = vq.codebook.weight.grad.abs().sum(-1) > 0
    assert torch.equal(grad_rows, used)


def test_cached_codes_follow_weight_updates():
    vq = text_vq(num_codes=16, dim=8)
    with torch.no_grad():
        c1 = vq.codebook.codes()
        assert vq.codebook.codes() is c1  # cached while nothing changes
    opt = torch.optim.SGD(vq.parameters(), lr=1.0)
    vq(torch.randn(12, 8))[2]["loss"].backward()
    opt.step()
    with torch.no_grad():
        c2 = vq.codebook.codes()
        book = vq.codebook
        fresh = F.normalize(book.embeddings @ book.proj.weight.T + book.proj.bias, dim=-1)
    assert not torch.equal(c1, c2) and torch.allclose(c2, fresh, atol=1e-6)
    assert vq.codebook.codes().requires_grad  # with grad enabled nothing is cached


def test_codebook_words_and_errors():
    vq = text_vq(num_codes=64, dim=16)
    assert vq.codebook_words(torch.tensor([[0, 1], [63, 2]])) == [
        [vq.config.tokens[0], vq.config.tokens[1]],
        [vq.config.tokens[63], vq.config.tokens[2]],
    ]
    with pytest.raises(DialectError, match=r"\[0, 63\]"):
        vq.codebook_words([64])
    learned = VectorQuantizer(VQConfig(dim=16, num_codes=8, codebook="learned"))
    with pytest.raises(DialectError, match="no source words"):
        learned.codebook_words([0])
    with pytest.raises(DialectError, match="cannot be re-initialised"):
        vq.codebook.reset_codes_(torch.tensor([0]), torch.zeros(1, 16))
    with pytest.raises(DialectError, match="learned codebook"):
        text_vq(num_codes=8, dim=16, restart_dead_codes=True)


def test_plain_constructor_matches_saved_shapes():
    book = TextAlignedCodebook(5, 12, 6, tokens=list("abcde"))
    assert book.embeddings.shape == (5, 12) and book.proj.weight.shape == (6, 12)
    with pytest.raises(DialectError, match="5 codes got 2 tokens"):
        TextAlignedCodebook(5, 12, 6, tokens=["a", "b"])
