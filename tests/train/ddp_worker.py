"""Trains a micro TA-Tok and a micro Tar with the real Trainer, as one process or one rank of
`torchrun --nproc_per_node N` (the test in test_ddp_models.py launches it both ways).

    python ddp_worker.py OUT     # each model: a straight 4-step run (2 accumulated micro-batches
                                 # per step), then one interrupted after its step-2 checkpoint
                                 # and resumed to step 4

"tar-fsdp" is the same Tar under `train.parallel=fsdp` (sharded weights, grads and AdamW moments;
in one process it is plain training) with activation checkpointing, which must change nothing.
Its saved state is the gathered full weights, on rank 0 only.

Writes OUT/<model>/<mode>/ (the run folders), OUT/states/<model>_<mode>_rank<r>.pt (each rank's
final weights) and OUT/writes_rank<r>.txt (every file-writing call the trainer made on that rank).
Determinism: TA-Tok trains one scale with argmax codes. Tar mixes captions (short, varying answers)
with t2i, so the ranks hold different numbers of loss tokens: equal weights then show that Tar's
loss is the mean over every rank's tokens, not a mean of per-rank means.
"""

import contextlib
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the micro model helpers

from detok.micro import tatok_cfg  # noqa: E402
from dialect.data.shapeworld import ShapeWorldDataset  # noqa: E402
from dialect.tokenizers.tatok import TATok  # noqa: E402
from dialect.train import TrainConfig, Trainer  # noqa: E402
from dialect.train import distributed as D  # noqa: E402
from dialect.train import fsdp as F  # noqa: E402
from dialect.train import trainer as trainer_module  # noqa: E402
from dialect.train.checkpoint import seed_everything  # noqa: E402
from dialect.unified import ShapeWorldTasks  # noqa: E402
from dialect.unified.tasks import TaskConfig  # noqa: E402
from unified.micro import WORLD, tar  # noqa: E402

STEPS, STOP, BATCH, ACCUM = 4, 2, 4, 2


def build(name: str, seed: int):
    seed_everything(seed)
    if name == "tatok":
        model = TATok(tatok_cfg(scale_weights=[1.0, 0.0, 0.0]))
        return model, ShapeWorldDataset(WORLD, seed=0, length=64)
    tasks = TaskConfig(weights={"t2i": 1.0, "caption": 1.0}, scale_weights=[1.0])
    return tar(seed=seed), ShapeWorldTasks(tasks, WORLD, num_scales=3, seed=0, length=64)


class Interrupted(Trainer):
    """Dies right after the checkpoint at step STOP, on every rank, as a killed job would."""

    def save(self):
        super().save()
        if self.step == STOP:
            raise KeyboardInterrupt


def log_writes(path: Path, rank: int, target, name: str) -> None:
    """Wrap `target.name` so every call is recorded in `path` before it runs."""
    original = getattr(target, name)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        with open(path, "a") as f:
            f.write(f"{rank} {name}\n")
        return original(*args, **kwargs)

    setattr(target, name, wrapped)


def main(out: Path) -> None:
    with D.process_group("cpu") as dist:
        writes = out / f"writes_rank{dist.rank}.txt"
        for name in ("save_yaml", "save_grid", "plot_metrics", "save_checkpoint"):
            log_writes(writes, dist.rank, trainer_module, name)
        for cls in (TATok, type(tar())):
            log_writes(writes, dist.rank, cls, "save_pretrained")
        (out / "states").mkdir(parents=True, exist_ok=True)
        train_all(out, dist)


def train_all(out: Path, dist: D.DistInfo) -> None:
    """Each model straight to STEPS, then interrupted at STOP and resumed with a fresh init."""
    for name in ("tatok", "tar", "tar-fsdp"):
        for mode in ("straight", "resume"):
            cfg = TrainConfig(
                out_dir=str(out / name / mode), steps=STEPS, batch_size=BATCH, grad_accum=ACCUM,
                lr=1e-3, warmup_steps=1, log_every=1, ckpt_every=STOP, progress=False,
                precision="fp32", device="cpu", parallel="fsdp" if name == "tar-fsdp" else "ddp",
                activation_checkpointing=name == "tar-fsdp",
            )  # fmt: skip
            model, data = build(name, seed=0)
            seed_everything(dist.rank)
            if mode == "resume":
                with contextlib.suppress(KeyboardInterrupt):
                    Interrupted(model, data, cfg, run_config=cfg, dist=dist).fit()
                model, data = build(name, seed=123)  # a different init: all must come from disk
                seed_everything(99 + dist.rank)
            trainer = Trainer(model, data, cfg, run_config=cfg, dist=dist)
            trainer.fit()
            if trainer.fsdp:  # each rank's share of the trained parameters: (local, full)
                trained = [p for p in model.parameters() if p.requires_grad]
                shares = [(p.to_local().numel(), p.numel()) for p in trained]
                torch.save(shares, out / "states" / f"{name}_{mode}_shares_rank{dist.rank}.pt")
            state = F.full_model_state(model) if trainer.fsdp else model.state_dict()
            if state:
                torch.save(state, out / "states" / f"{name}_{mode}_rank{dist.rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
