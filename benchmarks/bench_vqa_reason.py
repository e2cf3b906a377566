"""What describing before answering (`model.tasks.vqa_reason`) costs a Tar training step.

The same Tar LM (the shipped model's weights, trainable as its recipe makes it, `lm.max_len` 320)
takes training steps on the same batches of its task mix, built twice: as the shipped recipe makes
them and with `vqa_reason` (each vqa sample's first answer describes the scene and the asked-about
objects first, so its sequence is longer). Batches differ only in that; timed interleaved, one
step each per batch and round, bf16 autocast as the trainer runs them.

    python benchmarks/bench_vqa_reason.py [--threads N] [--repeats 2] [--batches 8] [--write]
"""

from __future__ import annotations

import dataclasses

import torch

from dialect.data.sample import collate
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import ShapeWorldTasks
from dialect.world import WorldConfig

try:
    from benchmarks.bench_train import step_fn, trainable
    from benchmarks.common import median_seconds, parser, report, start
except ImportError:  # run as a script from the repo root
    from bench_train import step_fn, trainable
    from common import median_seconds, parser, report, start


def batches(tasks, count: int, size: int = 32) -> list[dict]:
    world = WorldConfig(size=64)
    data = ShapeWorldTasks(tasks, world, 3, seed=0, length=count * size)
    return [collate([data[b * size + i] for i in range(size)]) for b in range(count)]


def tokens(model, batch: dict) -> int:
    with torch.no_grad():
        seqs, _ = model._sequences(batch)
    return sum(len(s) for s in seqs)


def main() -> None:
    ap = parser(__doc__, repeats=2)
    ap.add_argument("--batches", type=int, default=8, help="batches of 32 per recipe")
    args = ap.parse_args()
    load = start(args)
    tar = trainable(Dialect.from_pretrained().tar).train()
    tar.config.lm.max_len = 320  # rope: a longer context changes no weight
    plain_cfg = tar.config.tasks
    reason_cfg = dataclasses.replace(plain_cfg, vqa_reason=True)
    recipes = {
        "shipped recipe": batches(plain_cfg, args.batches),
        "vqa_reason": batches(reason_cfg, args.batches),
    }
    seconds = {name: 0.0 for name in recipes}
    for b in range(args.batches):
        for name, data in recipes.items():
            step, _ = step_fn(tar, data[b])

            def run(step=step) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    step()

            seconds[name] += median_seconds(run, args.repeats)
    count = {name: sum(tokens(tar, b) for b in data) for name, data in recipes.items()}
    base = "shipped recipe"
    rows = [
        "| recipe | tokens per batch of 32 | s / step | step time / shipped recipe's |",
        "|---|---|---|---|",
    ]
    for name in recipes:
        per = seconds[name] / args.batches
        rows.append(
            f"| {name} | {count[name] / args.batches:.0f} | {per:.3f} | {seconds[name] / seconds[base]:.3f} |"
        )
    body = (
        "\n".join(rows)
        + "\n\nThe shipped Tar LM's training step (forward, backward, AdamW, bf16 autocast) on "
        f"{args.batches} batches of 32 of its task mix (ShapeWorld seed 0), each built with and "
        f"without `vqa_reason`; per batch the median of {args.repeats} steps, recipes interleaved batch "
        f"by batch, summed. 1-minute load average at the start: {load:.1f}.\n"
    )
    report("Tar training step: describe, then answer (vqa_reason) vs the shipped recipe", body, args.write)


if __name__ == "__main__":
    main()
