import pytest
import torch

from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.encoders.contrastive import ContrastiveConfig, ContrastiveEncoder
from dialect.encoders.vit import ViTConfig
from dialect.quant import VQConfig
from dialect.tokenizers.pixelvq import PixelVQ, PixelVQConfig
from dialect.world import WorldConfig


def _cfg(**kw) -> PixelVQConfig:
    vq = VQConfig(dim=4, num_codes=64, metric="cosine", codebook="learned", restart_dead_codes=True,
                  dead_after=5)  # fmt: skip
    base = dict(image_size=32, channels=[8, 16, 16], vq=vq, disc_channels=8, disc_layers=2)
    return PixelVQConfig(**{**base, **kw})


def _images(n=2, size=32, seed=1):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _shapes(n=8, size=32):
    ds = ShapeWorldDataset(WorldConfig(size=size, max_objects=2), seed=0, length=n)
    return collate([ds[i] for i in range(n)])


def test_ids_and_images_have_the_grid_shapes_at_any_divisible_size():
    model = PixelVQ(_cfg(image_size=64)).eval()
    assert model.config.downsample == 4 and model.grid_size == 16 and model.num_codes == 64
    for size in (64, 32, 48):
        ids = model.encode_ids(_images(2, size))
        assert ids.shape == (2, size // 4, size // 4) and ids.dtype == torch.long
        assert int(ids.min()) >= 0 and int(ids.max()) < 64
        out = model.decode_ids(ids)
        assert out.shape == (2, 3, size, size) and out.min() >= -1 and out.max() <= 1
    z_q, ids = model.encode(_images(1, 64))
    assert z_q.shape == (1, 4, 16, 16)
    assert torch.allclose(z_q.norm(dim=1), torch.ones(1, 16, 16), atol=1e-5)  # L2-normalised codes
    assert torch.equal(z_q, model.quantizer.lookup(ids).permute(0, 3, 1, 2))  # eval: z_q == codes


def test_bad_ids_and_images_are_clear_errors():
    model = PixelVQ(_cfg()).eval()
    with pytest.raises(DialectError, match=r"\[0, 63\]"):
        model.decode_ids(torch.full((1, 8, 8), 64))
    with pytest.raises(DialectError, match=r"\[0, 63\]"):
        model.decode_ids(-torch.ones(1, 8, 8, dtype=torch.long))
    with pytest.raises(DialectError, match="rows, cols"):
        model.decode_ids(torch.zeros(1, 64, dtype=torch.long))
    with pytest.raises(DialectError, match="divisible by 4"):
        model.encode_ids(_images(1, 30))
    with pytest.raises(DialectError, match="not divisible"):
        PixelVQ(_cfg(image_size=30))


def test_save_load_round_trip_is_identical(tmp_path):
    model = PixelVQ(_cfg(disc_weight=0.1))
    model.training_losses({"image": _images()})  # moves the step counter
    model.eval()
    model.save_pretrained(tmp_path / "pvq")
    loaded = PixelVQ.from_pretrained(tmp_path / "pvq").eval()
    assert int(loaded.steps_seen) == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    x = _images(2)
    ids = model.encode_ids(x)
    assert torch.equal(ids, loaded.encode_ids(x))
    assert torch.equal(model.decode_ids(ids), loaded.decode_ids(ids))


def test_micro_model_learns_shapeworld_and_gradients_pass_straight_through():
    torch.manual_seed(0)
    model = PixelVQ(_cfg(channels=[8, 16]))
    batch = _shapes(4)
    out = model.training_losses(batch)
    out["loss"].backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0  # through the straight-through estimator
    assert model.quantizer.codebook.weight.grad.abs().sum() > 0  # the codebook loss
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        out = model.training_losses(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert set(out) >= {"loss", "l1", "l2", "vq", "commit", "batch_usage"}
    assert losses[-1] < 0.3 * losses[0], losses


def test_gan_terms_switch_on_after_disc_start():
    model = PixelVQ(_cfg(disc_weight=0.5, disc_start=2))
    x = {"image": _images()}
    model.eval()
    assert "g_loss" not in model.training_losses(x) and int(model.steps_seen) == 0  # eval: no count
    model.train()
    for _ in range(2):
        out = model.training_losses(x)
        assert "g_loss" not in out and "d_loss" not in out
        out["loss"].backward()  # the idle discriminator still takes part, with zero gradient
        assert all(p.grad is not None and not p.grad.any() for p in model.discriminator.parameters())
    out = model.training_losses(x)
    assert {"g_loss", "d_loss"} <= set(out) and int(model.steps_seen) == 3
    assert "g_loss" not in PixelVQ(_cfg()).training_losses(x)  # disc_weight 0: no discriminator
    assert PixelVQ(_cfg()).discriminator is None


def _grads(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def test_discriminator_and_generator_losses_move_only_their_own_side():
    model = PixelVQ(_cfg(disc_weight=0.5))
    out = model.training_losses({"image": _images()})
    gen = [*model.encoder.parameters(), *model.decoder.parameters()]
    disc = list(model.discriminator.parameters())
    assert all(not g.any() for g in _grads(out["d_loss"], gen))  # d_loss: no generator gradient
    assert all(not g.any() for g in _grads(out["g_loss"], disc))  # g_loss: no discriminator gradient
    assert any(g.any() for g in _grads(out["d_loss"], disc))
    assert any(g.any() for g in _grads(out["g_loss"], gen))
    # the total loss gives each side exactly the gradient of its own terms
    rest = out["loss"] - out["d_loss"]
    for a, b in zip(_grads(out["loss"], disc), _grads(out["d_loss"], disc), strict=True):
        assert torch.allclose(a, b)
    for a, b in zip(_grads(out["loss"], gen), _grads(rest, gen), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


@pytest.fixture
def encoder_dir(tmp_path):
    vision = ViTConfig(image_size=32, patch_size=8, dim=32, depth=2, heads=2)
    encoder = ContrastiveEncoder(ContrastiveConfig(vision=vision, embed_dim=32))
    return encoder.save_pretrained(tmp_path / "enc")


def test_perceptual_term_uses_the_frozen_contrastive_encoder(encoder_dir, tmp_path):
    model = PixelVQ(_cfg(perceptual_weight=1.0, perceptual_net=str(encoder_dir)))
    x = _images()
    assert float(model.perceptual()(x, x)) == pytest.approx(0.0, abs=1e-6)
    out = model.training_losses({"image": x})
    assert float(out["perceptual"].detach()) > 0
    grads = _grads(out["perceptual"], list(model.decoder.parameters()))
    assert any(g.any() for g in grads)
    assert not any(p.requires_grad for p in model.perceptual().vit.parameters())
    model.save_pretrained(tmp_path / "pvq")  # the frozen network is not part of the checkpoint
    assert not any("vit" in k or "perceptual" in k for k in model.state_dict())
    PixelVQ.from_pretrained(tmp_path / "pvq")
    with pytest.raises(DialectError, match="ContrastiveEncoder"):
        PixelVQ(_cfg(perceptual_weight=1.0, perceptual_net=str(tmp_path / "nope"))).perceptual()
