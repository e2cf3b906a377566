"""`dialect train lm init_from=DIR`: fine-tuning a saved Tar keeps its weights, TA-Tok and vocabulary
and takes this run's training-only keys (task mix, prompt dropout)."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.data import DataConfig
from dialect.train import TrainConfig
from dialect.train.recipes import lm
from dialect.unified import Tar, TaskConfig

from .micro import WORLD, tar


def _run(tmp_path, init_from: str, lr: float) -> lm.LMRun:
    train = TrainConfig(
        out_dir=str(tmp_path / "run"), steps=2, batch_size=4, lr=lr, warmup_steps=1, log_every=1,
        ckpt_every=1000, progress=False, precision="fp32", device="cpu",
    )  # fmt: skip
    run = lm.LMRun(init_from=init_from, tatok=str(tmp_path / "no_tatok"), world=WORLD, train=train)
    run.data = DataConfig(source="shapeworld", size=16)
    run.model.tasks = TaskConfig(weights={"t2i": 1.0, "vqa": 1.0}, t2i_drop=0.2)
    return run


def test_finetuning_starts_from_the_saved_weights_and_takes_the_runs_task_mix(tmp_path):
    saved = tar(seed=3)
    saved.save_pretrained(tmp_path / "saved")
    lm.train(_run(tmp_path, str(tmp_path / "saved"), lr=1e-12))  # the weights can barely move
    tuned = Tar.from_pretrained(tmp_path / "run" / "model")
    ref = saved.state_dict()
    assert all(torch.allclose(v, ref[k], atol=1e-6) for k, v in tuned.state_dict().items())
    assert tuned.config.tasks.t2i_drop == 0.2 and tuned.config.tasks.weights == {"t2i": 1.0, "vqa": 1.0}
    assert len(tuned.vocab) == len(saved.vocab)


def test_finetuning_a_missing_folder_names_the_key(tmp_path):
    with pytest.raises(DialectError, match="init_from"):
        lm.train(_run(tmp_path, str(tmp_path / "nothing"), lr=1e-3))
