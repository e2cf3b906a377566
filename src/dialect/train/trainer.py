"""The one training loop that drives every model in the project.

A model plugs in by being an `nn.Module` with the :class:`~dialect.core.pretrained.Pretrained`
mixin and a method

    training_losses(batch: dict) -> dict[str, Tensor]     # must contain the scalar "loss"

Optionally `training_samples(batch) -> Tensor (N, 3, H, W) in [-1, 1]` (written as sample grids)
and `param_groups(weight_decay)` (custom optimizer groups). The loop supplies AdamW, warm-up +
cosine, gradient clipping and accumulation, EMA, autocast, a progress bar, a JSONL metrics log,
sample grids, atomic checkpoints and exact resume, and runs unchanged under
`torchrun --nproc_per_node N` (DDP over the ranks' slices of each global batch).

Data: a map-style dataset is read through a `ResumableSampler` (a dataset stored in shards may
expose `blocks`, its samples per shard, to be shuffled shard-aware); an iterable one with
`load_state_dict({"consumed": n})` (a `WebDatasetStream`) is told its position. Either way the
position saved in a checkpoint (`batches_seen`) resumes the exact stream.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm import tqdm

from dialect.core.config import save_yaml
from dialect.core.errors import DialectError
from dialect.core.images import save_grid
from dialect.data.build import build_loader
from dialect.data.sample import SkipCounter, collate
from dialect.nn.blocks import enable_checkpointing
from dialect.nn.compile import compile_layers, cpp_compiler, uncompile_layers
from dialect.train import distributed as D
from dialect.train import fsdp as F
from dialect.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dialect.train.config import TrainConfig
from dialect.train.ema import EMA
from dialect.train.optim import build_optimizer, build_scheduler
from dialect.train.plots import plot_metrics
from dialect.train.precision import autocast, resolve_precision
from dialect.train.sampler import ResumableSampler

N_SAMPLE_IMAGES = 8


class _Losses(nn.Module):
    """Routes DDP's forward to `training_losses`, so models keep their own `forward`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.model.training_losses(batch)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _batch_len(batch: dict) -> int:
    for v in batch.values():
        if torch.is_tensor(v):
            return v.shape[0]
    return 0


class Trainer:
    """Train `model` on `dataset` as `cfg` says; `run_config` (any dataclass) is saved as config.yaml."""

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        cfg: TrainConfig,
        run_config: Any = None,
        dist: D.DistInfo | None = None,
    ) -> None:
        if not hasattr(model, "training_losses"):
            raise TypeError(f"{type(model).__name__} has no training_losses(batch) method")
        self.cfg, self.dataset = cfg, dataset
        self.dist = dist or D.init_distributed(cfg.device)
        self.device = self.dist.device
        self.precision = resolve_precision(cfg.precision, self.device)
        self.out = Path(cfg.out_dir)
        self.model = model.to(self.device)
        if cfg.parallel not in ("ddp", "fsdp"):
            raise DialectError(f"train.parallel must be ddp or fsdp, got {cfg.parallel!r}")
        self.fsdp = self.dist.enabled and cfg.parallel == "fsdp"
        if self.fsdp and cfg.ema_decay > 0:
            raise DialectError("train.parallel=fsdp does not support EMA; set train.ema_decay=0")
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        if cfg.activation_checkpointing and not enable_checkpointing(self.model):
            raise DialectError("train.activation_checkpointing: the model has no trainable transformer layer")
        self.compiled_layers = self._compile_layers() if cfg.compile else 0
        wrapped = _Losses(self.model)
        if self.fsdp:
            F.shard(wrapped)  # in place: parameters become shards, before the optimizer sees them
            self.step_module = wrapped
        else:
            self.step_module = DDP(wrapped) if self.dist.enabled else wrapped
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.step = 0  # optimizer steps done
        self.batches_seen = 0  # global micro-batches consumed: the data position
        self.skips = SkipCounter()
        self.run_config = run_config
        if cfg.batch_size % self.dist.world_size:
            raise DialectError(
                f"train.batch_size={cfg.batch_size} must be divisible by the {self.dist.world_size} ranks"
            )
        self.local_batch = cfg.batch_size // self.dist.world_size

    def _compile_layers(self) -> int:
        """`train.compile`: compile the model's transformer layers (`dialect.nn.compile`); on a CPU
        without a C++ compiler, say so and train eagerly. Returns how many layers were compiled."""
        if self.device.type == "cpu" and cpp_compiler() is None:
            self._log_line("train.compile: no C++ compiler (c++, g++, clang++ or $CXX); training eagerly")
            return 0
        n = compile_layers(self.model)
        if n == 0:
            raise DialectError("train.compile: the model has no compilable transformer layer")
        return n

    # ---------------------------------------------------------------- state
    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoint"

    def _state(self, optimizer_state: dict | None = None) -> dict[str, Any]:
        return {
            "step": self.step,
            "batches_seen": self.batches_seen,
            "optimizer": self.optimizer.state_dict() if optimizer_state is None else optimizer_state,
            "scheduler": self.scheduler.state_dict(),
            "rng": D.all_gather_object(rng_state()),
            "skipped": self.skips.state_dict(),
        }

    def save(self) -> None:
        # collectives, every rank takes part; under FSDP the shards are gathered on rank 0
        weights, optimizer_state = F.full_state(self.model, self.optimizer) if self.fsdp else (None, None)
        state = self._state(optimizer_state)
        if self.dist.is_main:
            ema_model = self.ema.model if self.ema else None
            with F.full_weights(self.model, weights):
                save_checkpoint(self.checkpoint_dir, self.model, ema_model, state)
        D.barrier()

    def _maybe_resume(self) -> None:
        if not (self.cfg.resume and self.checkpoint_dir.is_dir()):
            return
        ema_model = self.ema.model if self.ema else None
        load = F.load_model_state if self.fsdp else None
        state = load_checkpoint(self.checkpoint_dir, self.model, ema_model, load=load)
        if self.fsdp:
            F.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.batches_seen = state["step"], state["batches_seen"]
        self.skips.load_state_dict(state["skipped"])
        rngs = state["rng"]
        if len(rngs) != self.dist.world_size:
            raise DialectError(
                f"{self.checkpoint_dir} was written by {len(rngs)} ranks; resume it with as many"
            )
        set_rng_state(rngs[self.dist.rank])
        self._truncate_metrics()
        self._log_line(f"resumed from {self.checkpoint_dir} at step {self.step}")

    def _truncate_metrics(self) -> None:
        """Drop log rows past the resumed step, so the log reads as one uninterrupted run."""
        path = self.out / "metrics.jsonl"
        if not (self.dist.is_main and path.is_file()):
            return
        rows = [r for r in path.read_text().splitlines() if r.strip()]
        path.write_text("".join(r + "\n" for r in rows if json.loads(r).get("step", 0) <= self.step))

    # ---------------------------------------------------------------- data
    def _loader(self) -> DataLoader:
        if isinstance(self.dataset, IterableDataset):
            if hasattr(self.dataset, "load_state_dict"):
                self.dataset.load_state_dict({"consumed": self.batches_seen * self.local_batch})
            return build_loader(self.dataset, self.local_batch, self.cfg.num_workers)
        sampler = ResumableSampler(
            len(self.dataset),
            self.cfg.batch_size,
            self.dist.rank,
            self.dist.world_size,
            seed=self.cfg.seed,
            start_batch=self.batches_seen,
            blocks=getattr(self.dataset, "blocks", None),  # shards of a stored dataset: read shard-aware
        )
        return build_loader(self.dataset, self.local_batch, self.cfg.num_workers, sampler=sampler)

    def _next_batch(self, it) -> dict:
        """Next non-empty local batch; files the collate skipped are counted and reported."""
        for _ in range(1000):
            try:
                batch = next(it)
            except StopIteration:
                raise DialectError("the dataset ran out of samples (every file was skipped?)") from None
            self.batches_seen += 1
            self.skips.update(batch)  # logs each newly skipped file once
            if _batch_len(batch) > 0:
                return _to_device(batch, self.device)
        raise DialectError("1000 batches in a row were empty: nothing in the dataset can be read")

    # ---------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train until `cfg.steps`; returns the last logged metrics."""
        cfg = self.cfg
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.run_config is not None:
                save_yaml(self.run_config, self.out / "config.yaml")
        self._maybe_resume()
        if self.step >= cfg.steps:
            self._log_line(f"{self.out}: already trained to step {self.step}; nothing to do")
            self._export()
            return {"step": self.step}
        sample_batch = self._sample_batch()
        it = iter(self._loader())
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not (cfg.progress and self.dist.is_main),
            desc=type(self.model).__name__,
            dynamic_ncols=True,
        )
        sums: dict[str, float] = defaultdict(float)
        n_logged, samples_since, t_log = 0, 0, time.perf_counter()
        last: dict[str, Any] = {}
        self.model.train()
        while self.step < cfg.steps:
            for micro in range(cfg.grad_accum):
                batch = self._next_batch(it)
                samples_since += _batch_len(batch)
                sync = micro == cfg.grad_accum - 1 or not self.dist.enabled
                ctx = contextlib.nullcontext() if sync else self._no_sync()
                with ctx:
                    with autocast(self.precision, self.device):
                        losses = self.step_module(batch)
                    if "loss" not in losses:
                        raise TypeError("training_losses must return a dict with a 'loss' entry")
                    (losses["loss"].float() / cfg.grad_accum).backward()
                for k, v in losses.items():
                    sums[k] += float(v.detach()) / cfg.grad_accum
            if cfg.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                sums["grad_norm"] += float(F.full_norm(norm))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema:
                self.ema.update(self.model)
            self.step += 1
            n_logged += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                dt = time.perf_counter() - t_log
                row = {k: v / n_logged for k, v in sums.items()}
                row = D.all_reduce_mean(row, self.device)
                row.update(
                    step=self.step,
                    lr=self.scheduler.get_last_lr()[0],
                    samples_per_s=samples_since * self.dist.world_size / max(dt, 1e-9),
                )
                last = row
                self._write_metrics(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", sps=f"{row['samples_per_s']:.0f}")
                sums.clear()
                n_logged, samples_since, t_log = 0, 0, time.perf_counter()
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self._write_samples(sample_batch)
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.save()
        bar.close()
        self._write_samples(sample_batch)
        self._export()
        if self.compiled_layers:  # the next run in this process (train all) compiles its own
            uncompile_layers(self.model)
            torch._dynamo.reset()
        if len(self.skips):
            self._log_line(f"in all, {self.skips.summary()}")
        return last

    def _no_sync(self):
        return F.no_sync(self.step_module) if self.fsdp else self.step_module.no_sync()

    # ---------------------------------------------------------------- outputs
    def _write_metrics(self, row: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _sample_batch(self) -> dict | None:
        if not hasattr(self.model, "training_samples") or isinstance(self.dataset, IterableDataset):
            return None
        items = [self.dataset[i] for i in range(min(N_SAMPLE_IMAGES, len(self.dataset)))]
        batch = collate(items)
        return _to_device(batch, self.device) if _batch_len(batch) else None

    @torch.no_grad()
    def _write_samples(self, batch: dict | None) -> None:
        # under FSDP every rank runs the forwards (each one gathers shards from all ranks), so
        # `training_samples` must make the same number of forward calls on every rank
        if batch is None or not (self.dist.is_main or self.fsdp):
            return
        model = self.ema.model if self.ema else self.model
        was_training = model.training
        model.eval()
        with autocast(self.precision, self.device):
            images = model.training_samples(batch)
        model.train(was_training)
        if self.dist.is_main:
            save_grid(images.float(), self.out / "samples" / f"step_{self.step:06d}.png")

    def _export(self) -> None:
        """The run's product: `out_dir/model` (EMA weights when EMA is on) and a loss plot."""
        weights = F.full_model_state(self.model) if self.fsdp else None  # collective
        if self.dist.is_main:
            with F.full_weights(self.model, weights):
                (self.ema.model if self.ema else self.model).save_pretrained(self.out / "model")
            if (self.out / "metrics.jsonl").is_file():
                plot_metrics(self.out / "metrics.jsonl", self.out / "loss.png")
        D.barrier()

    def _log_line(self, text: str) -> None:
        if self.dist.is_main:
            tqdm.write(text)
