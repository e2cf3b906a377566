"""fp32 vs bf16 autocast for training on this machine: step time and convergence, side by side.

Runs the same training steps (same init, same data) of each model under both precisions in one
process, interleaved, and reports the bf16/fp32 speed ratio and the loss each reached. The
trainer's `precision=auto` follows what this shows: bf16 on CPU only with native bf16 units.

    python benchmarks/bench_precision.py [--steps 20] [--write]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from dialect.encoders.pixel import PixelAutoencoder, PixelAutoencoderConfig
from dialect.train.checkpoint import seed_everything
from dialect.train.precision import autocast, cpu_has_native_bf16

try:
    from benchmarks.common import append_section, machine
except ImportError:  # run as a script from the repo root
    from common import append_section, machine


class TinyTransformer(nn.Module):
    """4 layers, width 256, 128 tokens: the size class of the project's CPU LMs (stand-in core)."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, 4)
        self.emb = nn.Embedding(512, 256)
        self.head = nn.Linear(256, 512)

    def training_losses(self, batch):
        ids = batch["ids"]
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        logits = self.head(self.body(self.emb(ids[:, :-1]), mask=mask[:-1, :-1], is_causal=True))
        return {"loss": nn.functional.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())}


def _batches(kind: str, n: int):
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        if kind == "autoencoder":
            img = torch.rand(8, 3, 1, 1, generator=g).expand(8, 3, 64, 64).clone() * 2 - 1
            img[:, :, 16:48, 16:48] *= -1
            yield {"image": img}
        else:  # a learnable sequence: arithmetic progressions mod 512
            start = torch.randint(0, 512, (16, 1), generator=g)
            step = torch.randint(1, 8, (16, 1), generator=g)
            yield {"ids": (start + step * torch.arange(129)) % 512}


def _model(kind: str) -> nn.Module:
    seed_everything(0)
    if kind == "autoencoder":
        return PixelAutoencoder(PixelAutoencoderConfig(channels=[32, 64, 128, 128]))
    return TinyTransformer()


def run(kind: str, precision: str, steps: int) -> tuple[float, float]:
    """(seconds per step after 1 warm-up step, loss at the last step)."""
    model = _model(kind)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses, t0 = [], None
    for i, batch in enumerate(_batches(kind, steps + 1)):
        if i == 1:
            t0 = time.perf_counter()
        with autocast(precision, torch.device("cpu")):
            loss = model.training_losses(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return (time.perf_counter() - t0) / steps, losses[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model and precision")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()
    print(machine(), "| native bf16:", cpu_has_native_bf16())
    rows = ["| model | fp32 s/step | bf16 s/step | bf16 speed-up | fp32 final loss | bf16 final loss |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for kind in ("autoencoder", "transformer"):
        t32, l32 = run(kind, "fp32", args.steps)
        t16, l16 = run(kind, "bf16", args.steps)
        rows.append(f"| {kind} | {t32:.3f} | {t16:.3f} | {t32 / t16:.2f}x | {l32:.4f} | {l16:.4f} |")
        print(rows[-1], flush=True)
    note = (
        f"\nNative bf16 (AVX512-BF16/AMX) on this CPU: {cpu_has_native_bf16()}. "
        f"`precision=auto` therefore trains in {'bf16' if cpu_has_native_bf16() else 'fp32'} here. "
        f"{args.steps} timed steps after 1 warm-up step, same init and data for both precisions.\n"
    )
    table = "\n".join(rows) + "\n" + note
    print(table)
    if args.write:
        append_section("Training precision: fp32 vs bf16 autocast on CPU", table)


if __name__ == "__main__":
    main()
