"""Training throughput and model FLOPs utilisation (MFU) of each tiny model, against the measured
peak of a large fp32 matmul on the same machine, in the same run.

For each model one real training step (forward, backward, AdamW update) on a batch drawn the way
its recipe draws it. FLOPs are counted once with `torch.utils.flop_counter.FlopCounterMode`
(matmuls, convolutions and attention, forward + backward, frozen parts' forward included; cheap
elementwise work not counted), so achieved FLOP/s = counted FLOPs / median step time and
MFU = achieved / peak, the peak being the best of 5 fp32 `n x n @ n x n` matmuls (n = 2048).

Models: the shipped default model's Tar LM (its real step: ShapeWorld task mix, batch 32, both
length groups), AR-DTok, pixel VQ and TA-Tok (weights cast to fp32), and a fresh tiny teacher
(ContrastiveEncoder with the frozen MiniLM text tower).

    python benchmarks/bench_train.py [--threads N] [--repeats 3] [--write]
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from dialect.core.config import load_config
from dialect.data.build import DataConfig, build_dataset
from dialect.data.sample import collate
from dialect.encoders.contrastive import ContrastiveEncoder
from dialect.train.recipes import preset_path
from dialect.train.recipes.encoder import EncoderRun
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import ShapeWorldTasks
from dialect.world import WorldConfig

try:
    from benchmarks.common import matmul_peak, parser, report, start
except ImportError:  # run as a script from the repo root
    from common import matmul_peak, parser, report, start


def images(n: int, seed: int = 0) -> dict:
    ds = build_dataset(DataConfig(source="shapeworld", size=64, seed=seed, length=n))
    return collate([ds[i] for i in range(n)])


def trainable(model: torch.nn.Module) -> torch.nn.Module:
    """A loaded (inference) model rebuilt as its constructor makes it for training (frozen parts
    frozen, the rest trainable), with the loaded weights, in fp32."""
    fresh = type(model)(model.config)
    fresh.load_state_dict(model.state_dict())
    return fresh.float()


def models(batch: int) -> dict[str, tuple[torch.nn.Module, dict]]:
    """name -> (model, fp32, one batch)."""
    d = Dialect.from_pretrained()
    tar = trainable(d.tar)
    tasks = ShapeWorldTasks(
        tar.config.tasks, WorldConfig(size=64), tar.config.tatok.num_scales, seed=0, length=batch
    )
    enc_cfg = load_config(EncoderRun, [preset_path("encoder", "tiny")])
    teacher = ContrastiveEncoder(enc_cfg.model)
    world = replace(WorldConfig(), max_objects=enc_cfg.world.max_objects)
    enc_ds = build_dataset(DataConfig(source="shapeworld", size=64, length=64), world)
    return {
        "Tar LM (tiny)": (tar, collate([tasks[i] for i in range(batch)])),
        "AR-DTok": (trainable(d.decoders["ar"]), images(16)),
        "pixel VQ": (trainable(d.decoders["ar"].codec), images(16)),
        "TA-Tok": (trainable(d.tar.tatok), images(32)),
        "teacher (contrastive)": (teacher, collate([enc_ds[i] for i in range(64)])),
    }


def step_fn(model: torch.nn.Module, batch: dict):
    """-> (one training step, trainable parameter count). Every call reseeds the global RNG, so
    the random draws inside a loss (TA-Tok's scale per step, diffusion timesteps, condition
    dropout) are the same in every call: the FLOP-counted step and the timed ones do the same work
    (TA-Tok's step at its finest scale costs 2.5x its coarsest)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)

    def step() -> float:
        torch.manual_seed(0)
        loss = model.training_losses(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step, sum(p.numel() for p in params)


def main() -> None:
    ap = parser(__doc__, repeats=3)
    ap.add_argument("--lm-batch", type=int, default=32)
    args = ap.parse_args()
    load = start(args)
    peak = matmul_peak()
    print(f"fp32 matmul peak (2048^3): {peak / 1e9:.1f} GFLOP/s", flush=True)
    rows = ["| model | trainable params | batch | s / step | samples/s | GFLOP / step | GFLOP/s | MFU |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, (model, batch) in models(args.lm_batch).items():
        model.train()
        step, n_params = step_fn(model, batch)
        step()  # warm-up
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        secs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            step()
            secs.append(time.perf_counter() - t0)
        s = statistics.median(secs)
        b = len(batch["image"]) if "image" in batch and hasattr(batch["image"], "__len__") else args.lm_batch
        rows.append(
            f"| {name} | {n_params / 1e6:.2f}M | {b} | {s:.3f} | {b / s:.1f} | {flops / 1e9:.1f} "
            f"| {flops / s / 1e9:.1f} | {flops / s / peak:.0%} |"
        )
        print(rows[-1], flush=True)
    body = (
        "\n".join(rows) + f"\n\nPeak: best fp32 2048 x 2048 matmul in this run, {peak / 1e9:.1f} GFLOP/s. "
        "FLOPs counted by torch's FlopCounterMode over one full step (forward + backward; frozen parts' "
        f"forward included), times the median of {args.repeats} steps after a warm-up, fp32; every step "
        "reseeds the RNG, so all of them draw what the counted one drew (e.g. TA-Tok's scale). "
        f"1-minute load average at the start: {load:.1f}.\n"
    )
    report("Training throughput and MFU (tiny models)", body, args.write)


if __name__ == "__main__":
    main()
