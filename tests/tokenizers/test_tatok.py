import copy

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.encoders.vit import ViTConfig
from dialect.quant import VQConfig
from dialect.tokenizers.tatok import TATok, TATokConfig


def _cfg(**vq):
    return TATokConfig(
        teacher=ViTConfig(image_size=32, patch_size=8, dim=64, depth=2, heads=2),
        pool_scales=[1, 2, 4],
        vq=VQConfig(dim=384, num_codes=128, **vq),
        decoder_dim=64,
        decoder_depth=2,
        decoder_heads=2,
    )


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return TATok(_cfg()).eval()


def _images(n=3):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_encode_decode_shapes_for_every_scale(tok):
    x = _images()
    for scale, n in enumerate([16, 4, 1]):
        ids = tok.encode_ids(x, scale)
        assert ids.shape == (3, n) and ids.dtype == torch.long
        assert int(ids.min()) >= 0 and int(ids.max()) < 128
        assert tok.num_tokens(scale) == n
        assert tok.decode_ids(ids, scale).shape == (3, 4, 4, 64)


def test_encode_ids_all_equals_each_scale_alone(tok):
    x = _images()
    every = tok.encode_ids_all(x)
    assert len(every) == tok.config.num_scales
    for scale, ids in enumerate(every):
        assert torch.equal(ids, tok.encode_ids(x, scale))


def test_bad_ids_scales_and_lengths_are_clear_errors(tok):
    with pytest.raises(DialectError, match="128"):
        tok.decode_ids(torch.tensor([[0, 1, 2, 128]]), 1)
    with pytest.raises(DialectError):
        tok.decode_ids(torch.tensor([[-1, 0, 0, 0]]), 1)
    with pytest.raises(DialectError, match="4 tokens"):
        tok.decode_ids(torch.zeros(1, 5, dtype=torch.long), 1)
    with pytest.raises(DialectError, match="scale"):
        tok.encode_ids(_images(1), 3)


def test_codebook_words_are_the_source_words(tok):
    words = tok.config.vq.tokens
    assert len(words) == 128 and words[:3] == ["the", "of", "and"]
    assert tok.codebook_words([0, 2]) == ["the", "and"]
    ids = tok.encode_ids(_images(1), 2)
    assert tok.codebook_words(ids[0]) == [words[int(ids[0, 0])]]


def test_training_keeps_E_frozen_moves_W_and_lowers_the_loss():
    torch.manual_seed(0)
    model = TATok(_cfg()).train()
    E0 = model.quantizer.codebook.embeddings.clone()
    W0 = model.quantizer.codebook.proj.weight.detach().clone()
    teacher0 = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    x = _images(8)
    losses = []
    for _ in range(25):
        out = model.training_losses({"image": x})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert torch.equal(model.quantizer.codebook.embeddings, E0)
    assert not torch.equal(model.quantizer.codebook.proj.weight, W0)
    assert all(torch.equal(v, teacher0[k]) for k, v in model.teacher.state_dict().items())
    assert min(losses[-5:]) < 0.8 * losses[0], losses


def test_save_load_round_trip_keeps_ids_and_words(tmp_path, tok):
    tok.save_pretrained(tmp_path / "tatok")
    back = TATok.from_pretrained(tmp_path / "tatok").eval()
    x = _images()
    for scale in range(3):
        assert torch.equal(tok.encode_ids(x, scale), back.encode_ids(x, scale))
    assert back.config.vq.tokens == tok.config.vq.tokens


def test_learned_codebook_ablation_builds_and_trains():
    model = TATok(_cfg(codebook="learned")).train()
    out = model.training_losses({"image": _images(4)})
    out["loss"].backward()
    assert model.quantizer.codebook.weight.grad is not None


def test_hf_vision_tower_as_teacher(tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    hf = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=32, patch_size=8,
    )  # fmt: skip
    SiglipVisionModel(hf).save_pretrained(tmp_path / "siglip")
    cfg = _cfg()
    cfg.hf_teacher = str(tmp_path / "siglip")
    cfg.teacher = ViTConfig(image_size=32, patch_size=8)
    model = TATok(cfg).eval()
    assert model.teacher.feature_dim == 32
    ids = model.encode_ids(_images(2), 0)
    assert ids.shape == (2, 16)
    assert model.decode_ids(ids, 0).shape == (2, 4, 4, 32)


def test_training_a_text_codebook_whose_embeddings_were_never_loaded_is_an_error(tok):
    """A saved config names E's rows but not their values (the checkpoint holds them): a model
    built from it and trained without loading would collapse every code onto normalise(b)."""
    unloaded = TATok(tok.config).train()
    assert not unloaded.quantizer.codebook.embeddings.any()
    with pytest.raises(DialectError, match="all zero"):
        unloaded.training_losses({"image": _images(2)})
    unloaded.eval().encode_ids(_images(2))  # inference only reads: no check


def test_recipe_reads_E_again_when_given_a_saved_config(tmp_path, tok):
    from dialect.encoders.contrastive import ContrastiveConfig, ContrastiveEncoder
    from dialect.train.recipes.tatok import TATokRun, build_tatok

    encoder = ContrastiveEncoder(ContrastiveConfig(vision=tok.config.teacher, embed_dim=32))
    teacher = str(encoder.save_pretrained(tmp_path / "enc"))
    fresh = build_tatok(TATokRun(model=_cfg(), teacher=teacher))
    saved = copy.deepcopy(fresh.config)  # as loaded from a run's config.yaml: tokens set
    assert saved.vq.tokens
    again = build_tatok(TATokRun(model=saved, teacher=teacher))
    assert again.quantizer.codebook.embeddings.any()
    assert torch.equal(again.quantizer.codebook.embeddings, fresh.quantizer.codebook.embeddings)
    assert again.config.vq.tokens == fresh.config.vq.tokens
    saved.vq.tokens = list(reversed(saved.vq.tokens))
    with pytest.raises(DialectError, match="vq.tokens differ"):
        build_tatok(TATokRun(model=saved, teacher=teacher))
