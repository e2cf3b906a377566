import math

import pytest
import torch
import torch.nn.functional as F

from dialect.core.config import load_config
from dialect.core.errors import DialectError
from dialect.data.build import DataConfig, build_dataset
from dialect.detok.diffusion import DifDTok, DifDTokConfig, euler_sample, foreground_mask
from dialect.tokenizers.pixelvq import PixelVQ, PixelVQConfig
from dialect.tokenizers.tatok import TATok, TATokConfig
from dialect.train.config import TrainConfig
from dialect.train.recipes import preset_path
from dialect.train.recipes.difdtok import DifDTokRun, build_difdtok, train

from .micro import SIZE, codec_cfg, images, tatok_cfg


def _cfg(space="latent", **kw):
    base = dict(
        tatok=tatok_cfg(), codec=codec_cfg(), space=space, image_size=SIZE,
        patch_size=2 if space == "latent" else 4, dim=32, depth=2, heads=2, sample_steps=4,
    )  # fmt: skip
    base.update(kw)
    return DifDTokConfig(**base)


def _model(space="latent", seed=0, **kw):
    torch.manual_seed(seed)
    return DifDTok(_cfg(space, **kw))


# ---------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("space", ["latent", "pixel"])
def test_decode_ids_shapes_for_every_scale(space):
    model = _model(space).eval()
    x = images(3)
    assert model.target_shape == ((8, 8, 8) if space == "latent" else (3, SIZE, SIZE))
    for scale, n in enumerate([16, 4, 1]):
        ids = model.condition.encode_ids(x, scale)
        assert ids.shape == (3, n)
        out = model.decode_ids(ids, scale, steps=2, seed=0)
        assert out.shape == (3, 3, SIZE, SIZE)
        assert float(out.min()) >= -1 and float(out.max()) <= 1
        feats = model.condition.features(ids, scale)
        assert model.sample(feats, scale, steps=2).shape == (3, *model.target_shape)
    grid = model.training_samples({"image": x.repeat(2, 1, 1, 1)})
    assert grid.shape == (16, 3, SIZE, SIZE)  # 4 images x (input + 3 scales)
    assert torch.equal(grid[0], x[0]) and torch.equal(grid[4], x[1])


@pytest.mark.parametrize("patch_size,grid", [(1, 8), (4, 2)])
def test_condition_and_target_grids_may_differ(patch_size, grid):
    model = _model(patch_size=patch_size).eval()  # condition grid 4x4, target grid `grid`
    assert model.grid == grid and model.rope_cos.shape[0] == 16 + grid * grid
    cond = model.condition(images(2), 0)
    assert model._under(cond).shape == (2, grid * grid, 32)
    out = model.reconstruct(images(2), 0, steps=2, seed=0)
    assert out.shape == (2, 3, SIZE, SIZE)


def _count_forwards(model):
    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    return calls, handle


@pytest.mark.parametrize("guidance,rows", [(3.0, 4), (1.0, 2)])
def test_euler_calls_the_network_once_per_step_with_cfg_rows_batched(guidance, rows):
    model = _model().eval()
    ids = model.condition.encode_ids(images(2), 1)
    calls, handle = _count_forwards(model)
    model.decode_ids(ids, 1, steps=5, guidance=guidance, seed=0)
    handle.remove()
    assert calls == [rows] * 5  # 2B rows (cond + uncond) in ONE forward when guided, else B


def test_euler_integrates_the_flow_and_applies_guidance():
    x0 = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    c, u = torch.zeros(3, 1), torch.zeros(3, 1)

    def exact(x, t, cond):  # the true velocity of x_t = (1 - t) x0 + t eps for a single x0
        return (x - x0.repeat(x.shape[0] // 3, 1, 1, 1)) / t[:, None, None, None]

    torch.testing.assert_close(euler_sample(exact, noise, c, u, steps=7, guidance=1.0), x0)
    torch.testing.assert_close(euler_sample(exact, noise, c, u, steps=1, guidance=1.0), x0)

    def const(x, t, cond):  # v = 1 for conditional rows, 0.25 for unconditional ones
        return torch.ones_like(x) * cond[:, :1, None, None]

    cond, uncond = torch.ones(3, 1), torch.full((3, 1), 0.25)
    out = euler_sample(const, noise, cond, uncond, steps=4, guidance=3.0)
    torch.testing.assert_close(out, noise - (0.25 + 3.0 * 0.75))  # integral over t from 1 to 0
    torch.testing.assert_close(euler_sample(const, noise, cond, uncond, 4, 1.0), noise - 1.0)


# ---------------------------------------------------------------------------- training


def _fit(model, images, steps, lr=2e-3):
    """AdamW with the trainer's gradient clipping (1.0); returns the loss of every step."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        out = model.training_losses({"image": images})
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


@torch.no_grad()
def _held_loss(model, images, draws=8):
    """The training loss averaged over `draws` fixed draws of scale, t, noise and dropout."""
    total = 0.0
    for k in range(draws):
        torch.manual_seed(1000 + k)
        total += float(model.training_losses({"image": images})["loss"])
    return total / draws


def test_flow_matching_loss_falls_and_frozen_submodels_stay_bit_identical():
    model = _model()
    frozen = {
        k: v.clone() for k, v in model.state_dict().items() if k.startswith(("condition.tatok.", "codec."))
    }
    assert any(k.startswith("codec.") for k in frozen) and any(
        k.startswith("condition.tatok.") for k in frozen
    )
    x = images(4)
    before = _held_loss(model, x)
    torch.manual_seed(0)
    losses = _fit(model, x, 40, lr=5e-3)
    after = _held_loss(model, x)
    assert after < 0.75 * before, (before, after, losses[::8])
    assert not model.codec.training and not model.condition.tatok.training
    for name, p in [*model.codec.named_parameters(), *model.condition.tatok.named_parameters()]:
        assert not p.requires_grad and p.grad is None, name
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert model.patch_out.weight.abs().sum() > 0  # the network itself did move


def test_micro_model_overfits_one_image_and_sampling_reproduces_it():
    model = _model("pixel", cond_drop=0.0, scale_weights=[1.0, 0.0, 0.0], depth=2, dim=64, heads=4)
    image = images(1, seed=3)
    losses = _fit(model, image, 300, lr=3e-3)
    assert sum(losses[-20:]) / 20 < 0.2 * losses[0], (losses[0], losses[-20:])
    model.eval()
    ids = model.condition.encode_ids(image, 0)
    sample = model.decode_ids(ids, 0, steps=20, guidance=1.0, seed=0)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    err, err_noise = F.mse_loss(sample, image).item(), F.mse_loss(noise, image).item()
    err_other = F.mse_loss(sample, images(1, seed=4)).item()  # another square elsewhere
    err_black = F.mse_loss(sample, -torch.ones_like(image)).item()  # the background alone
    assert err < 0.2 * min(err_noise, err_other, err_black), (err, err_noise, err_other, err_black)


def test_timesteps_are_logit_normal():
    model = _model(t_mean=0.5, t_std=0.8)
    t = model.sample_t(50000, generator=torch.Generator().manual_seed(0))
    assert float(t.min()) > 0 and float(t.max()) < 1
    logit = torch.logit(t.double())
    assert abs(logit.mean().item() - 0.5) < 0.02 and abs(logit.std().item() - 0.8) < 0.02
    assert abs(t.mean().item() - 0.5) > 0.05  # not uniform / not centred: the shift shows


def test_foreground_mask_marks_the_positions_under_the_object():
    img = -torch.ones(2, 3, 16, 16)
    img[0, :, 3:7, 9:14] = 0.5  # rows 3-6, columns 9-13
    img[1, 0] = 0.2  # an image of one flat colour: no foreground
    mask = foreground_mask(img, 8)  # 2x2 pixels per position
    expected = torch.zeros(8, 8)
    expected[1:4, 4:7] = 1  # every position that holds one of the object's pixels
    assert mask.shape == (2, 1, 8, 8)
    assert torch.equal(mask[0, 0], expected) and not mask[1].any()
    img[0, :, 3:7, 9:14] = -0.95  # within the tolerance of the background
    assert not foreground_mask(img, 8).any()


@pytest.mark.parametrize("where", ["foreground", "background"])
def test_fg_weight_reweights_the_error_where_the_object_is(monkeypatch, where):
    """With a network that is exact except at one position, the fg-weighted loss is the plain
    loss times (1 + w) / mean weight on the object and 1 / mean weight on the canvas."""
    model = _model(fg_weight=3.0)
    x = images(1, seed=2)
    x0 = model.encode_target(x)
    mask = foreground_mask(x, model.side)
    pos = mask[0, 0].nonzero()[0] if where == "foreground" else (1 - mask[0, 0]).nonzero()[0]

    def exact_but_one(x_t, t, cond):
        v = (x_t - x0) / t[:, None, None, None]  # x_t = x0 + t (eps - x0): the true velocity
        v[:, :, pos[0], pos[1]] += 1.0
        return v

    monkeypatch.setattr(model, "forward", exact_but_one)
    torch.manual_seed(0)
    weighted = float(model.training_losses({"image": x})["loss"])
    model.config.fg_weight = 0.0
    plain = float(model.training_losses({"image": x})["loss"])
    mean_weight = 1.0 + 3.0 * float(mask.mean())
    factor = (4.0 if where == "foreground" else 1.0) / mean_weight
    assert plain == pytest.approx(1.0 / x0[0, 0].numel(), rel=1e-4)  # 1 of S*S positions, all C
    assert weighted == pytest.approx(plain * factor, rel=1e-4)


def test_training_losses_use_the_configured_condition_dropout():
    model = _model(cond_drop=0.25)
    assert model.condition.drop == 0.25
    assert set(model.training_losses({"image": images(2)})) == {"loss", "scale"}


# ---------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip_gives_identical_samples(tmp_path):
    model = _model()
    _fit(model, images(2), 3)
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = DifDTok.from_pretrained(tmp_path / "m").eval()
    ids = model.condition.encode_ids(images(2), 1)
    a = model.decode_ids(ids, 1, steps=3, guidance=2.0, seed=7)
    b = loaded.decode_ids(ids, 1, steps=3, guidance=2.0, seed=7)
    assert torch.equal(a, b)
    c = loaded.decode_ids(ids, 1, steps=3, guidance=2.0, seed=8)
    assert not torch.equal(a, c)


def test_snap_decodes_through_the_nearest_codes():
    model = _model().eval()
    z_q, _ = model.codec.encode(images(2))
    x0 = z_q * math.sqrt(8) + 0.05 * torch.randn_like(z_q)
    torch.testing.assert_close(model.decode_target(x0, snap=True), model.codec.decode(z_q))
    assert model.encode_target(images(2)).shape == (2, 8, 8, 8)


def test_bad_configs_are_clear_errors():
    with pytest.raises(DialectError, match="space"):
        DifDTok(_cfg(space="voxel"))
    with pytest.raises(DialectError, match="patch_size"):
        DifDTok(_cfg(patch_size=3))
    with pytest.raises(DialectError, match="divisible by 4"):
        DifDTok(_cfg(dim=24, heads=4))
    with pytest.raises(DialectError, match="fg_weight"):
        DifDTok(_cfg(fg_weight=-1.0))


# ---------------------------------------------------------------------------- recipe


def _saved_submodels(tmp_path):
    torch.manual_seed(0)
    TATok(tatok_cfg()).save_pretrained(tmp_path / "tatok")
    PixelVQ(codec_cfg()).save_pretrained(tmp_path / "pixelvq")
    return str(tmp_path / "tatok"), str(tmp_path / "pixelvq")


def _run(tmp_path, **kw):
    tatok, pixelvq = _saved_submodels(tmp_path)
    model = _cfg()
    model.tatok, model.codec = TATokConfig(), PixelVQConfig()  # replaced from the folders
    train_cfg = TrainConfig(
        out_dir=str(tmp_path / "run"), steps=2, batch_size=2, warmup_steps=1, log_every=1,
        progress=False, precision="fp32", device="cpu",
    )  # fmt: skip
    base = dict(model=model, tatok=tatok, pixelvq=pixelvq, data=DataConfig(size=SIZE), train=train_cfg)
    base.update(kw)
    return DifDTokRun(**base)


def test_recipe_carries_the_trained_submodels_and_trains(tmp_path):
    cfg = _run(tmp_path)
    model = build_difdtok(cfg)
    ref = TATok.from_pretrained(cfg.tatok)
    for k, v in ref.state_dict().items():
        assert torch.equal(model.condition.tatok.state_dict()[k], v), k
    assert cfg.model.codec.image_size == SIZE and cfg.model.tatok.teacher.dim == 32
    train(cfg)
    saved = DifDTok.from_pretrained(tmp_path / "run" / "model")
    assert all(torch.equal(v, model.codec.state_dict()[k]) for k, v in saved.codec.state_dict().items())
    assert (tmp_path / "run" / "samples").is_dir()


def test_recipe_names_the_command_when_a_submodel_is_missing(tmp_path):
    cfg = _run(tmp_path, pixelvq=str(tmp_path / "nope"))
    with pytest.raises(DialectError, match="dialect train pixelvq"):
        build_difdtok(cfg)
    cfg = _run(tmp_path, tatok=str(tmp_path / "nope"))
    with pytest.raises(DialectError, match="dialect train tatok"):
        build_difdtok(cfg)
    cfg = _run(tmp_path, data=DataConfig(size=32))
    with pytest.raises(DialectError, match="data.size"):
        build_difdtok(cfg)


def test_tiny_preset_parses():
    cfg = load_config(DifDTokRun, [preset_path("difdtok", "tiny")])
    assert (
        cfg.model.space == "latent" and cfg.model.patch_size == 2 and cfg.train.out_dir == "runs/tiny/difdtok"
    )


def test_tiny_preset_reads_the_ids_stage_and_names_it_when_missing(tmp_path):
    cfg = load_config(DifDTokRun, [preset_path("difdtok", "tiny")], [f"data.path={tmp_path / 'ids'}"])
    assert cfg.data.source == "pretokenized"
    with pytest.raises(DialectError, match="dialect train ids --preset tiny"):
        build_dataset(cfg.data, cfg.world)
    (tmp_path / "ids").mkdir()  # a folder that is not a pretokenized one
    with pytest.raises(DialectError, match="dialect train ids --preset tiny"):
        build_dataset(cfg.data, cfg.world)
