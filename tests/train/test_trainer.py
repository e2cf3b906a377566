import json

import pytest
import torch
from torch.utils.data import Dataset

from dialect.encoders.pixel import PixelAutoencoder, PixelAutoencoderConfig
from dialect.train import TrainConfig, Trainer
from dialect.train.checkpoint import seed_everything
from dialect.train.optim import lr_factor
from dialect.train.precision import resolve_precision
from dialect.train.sampler import ResumableSampler


class Squares(Dataset):
    """64 images (3, 16, 16): one coloured square on black, deterministic per index."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        img = -torch.ones(3, 16, 16)
        y, x = torch.randint(0, 10, (2,), generator=g).tolist()
        img[:, y : y + 6, x : x + 6] = (torch.rand(3, generator=g) * 2 - 1)[:, None, None]
        return {"image": img, "text": f"square {i}", "meta": {"index": i}}


def _model(seed=0):
    seed_everything(seed)
    return PixelAutoencoder(PixelAutoencoderConfig(image_size=16, channels=[8, 16], latent_dim=4))


def _cfg(tmp_path, **kw):
    base = dict(
        out_dir=str(tmp_path), steps=8, batch_size=8, lr=3e-3, warmup_steps=2, log_every=1,
        ckpt_every=4, progress=False, precision="fp32", device="cpu",
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _rows(path):
    return [json.loads(r) for r in (path / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_and_outputs_are_written(tmp_path):
    cfg = _cfg(tmp_path, steps=40, log_every=5, sample_every=20)
    Trainer(_model(), Squares(), cfg).fit()
    rows = _rows(tmp_path)
    assert rows[-1]["step"] == 40
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"], (rows[0]["loss"], rows[-1]["loss"])
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "checkpoint" / "trainer_state.pt").is_file()
    assert (tmp_path / "samples" / "step_000020.png").is_file()
    assert (tmp_path / "loss.png").is_file()
    PixelAutoencoder.from_pretrained(tmp_path / "model")


class _Interrupted(Trainer):
    """Dies right after writing the checkpoint at step `stop`, as a killed job would."""

    stop = 4

    def save(self):
        super().save()
        if self.step == self.stop:
            raise KeyboardInterrupt


@pytest.mark.parametrize("accum,ema", [(1, 0.0), (2, 0.9)])
def test_resume_is_bit_identical(tmp_path, accum, ema):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    kw = dict(grad_accum=accum, ema_decay=ema)
    seed_everything(123)
    Trainer(_model(), Squares(), _cfg(straight, **kw)).fit()
    seed_everything(123)
    with pytest.raises(KeyboardInterrupt):
        _Interrupted(_model(), Squares(), _cfg(broken, **kw)).fit()
    # A different init and RNG state: everything must come from the checkpoint.
    seed_everything(999)
    Trainer(_model(seed=7), Squares(), _cfg(broken, **kw)).fit()
    a = PixelAutoencoder.from_pretrained(straight / "model").state_dict()
    b = PixelAutoencoder.from_pretrained(broken / "model").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [r["loss"] for r in _rows(straight)]
    lb = [r["loss"] for r in _rows(broken)]
    assert la == lb and len(la) == 8


def test_finished_run_is_not_retrained(tmp_path):
    Trainer(_model(), Squares(), _cfg(tmp_path, steps=4)).fit()
    before = (tmp_path / "metrics.jsonl").read_text()
    Trainer(_model(), Squares(), _cfg(tmp_path, steps=4)).fit()
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_resume_refuses_a_different_model_config(tmp_path):
    from dialect.core.errors import DialectError

    Trainer(_model(), Squares(), _cfg(tmp_path, steps=4)).fit()
    other = PixelAutoencoder(PixelAutoencoderConfig(image_size=16, channels=[8, 16], latent_dim=5))
    with pytest.raises(DialectError, match="different model config"):
        Trainer(other, Squares(), _cfg(tmp_path, steps=8)).fit()


def test_sampler_slices_global_batches_over_ranks():
    full = ResumableSampler(10, 4, seed=3)
    r0 = ResumableSampler(10, 4, rank=0, world_size=2, seed=3)
    r1 = ResumableSampler(10, 4, rank=1, world_size=2, seed=3)
    it, i0, i1 = iter(full), iter(r0), iter(r1)
    for _ in range(7):  # crosses two epoch boundaries
        batch = [next(it) for _ in range(4)]
        assert batch == [next(i0), next(i0), next(i1), next(i1)]
    # each epoch is a permutation, and resuming at global batch 5 continues the same stream
    first_epoch = [x for x, _ in zip(iter(ResumableSampler(10, 2, seed=3)), range(10), strict=False)]
    assert sorted(first_epoch) == list(range(10))
    stream = [x for x, _ in zip(iter(full), range(40), strict=False)]
    resumed = [
        x for x, _ in zip(iter(ResumableSampler(10, 4, seed=3, start_batch=5)), range(20), strict=False)
    ]
    assert resumed == stream[20:40]


def test_schedule_warms_up_then_decays_to_floor():
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    values = [lr_factor(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_precision_policy():
    from dialect.core.errors import DialectError

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert resolve_precision("auto", cpu) in ("fp32", "bf16")
    with pytest.raises(DialectError):
        resolve_precision("fp16x", cpu)


def test_activation_checkpointing_trains_the_same_weights(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dialect.unified import ShapeWorldTasks
    from dialect.unified.tasks import TaskConfig
    from unified.micro import WORLD, tar

    tasks = TaskConfig(weights={"t2i": 1.0, "caption": 1.0}, scale_weights=[1.0])
    data = ShapeWorldTasks(tasks, WORLD, num_scales=3, seed=0, length=32)
    weights = {}
    for ckpt in (False, True):
        model = tar(seed=0)
        seed_everything(0)
        cfg = _cfg(tmp_path / str(ckpt), steps=3, batch_size=4, activation_checkpointing=ckpt)
        Trainer(model, data, cfg).fit()
        assert all(b.checkpointing == ckpt for b in model.lm.stack.blocks)
        assert not any(b.checkpointing for b in model.tatok.modules() if hasattr(b, "checkpointing"))
        weights[ckpt] = model.state_dict()
    for k, v in weights[False].items():
        torch.testing.assert_close(weights[True][k], v, rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(Exception, match="no trainable transformer layer"):
        Trainer(_model(), Squares(), _cfg(tmp_path / "ae", activation_checkpointing=True))
