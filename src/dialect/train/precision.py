"""Which autocast dtype a run uses.

bf16 autocast on CUDA; on CPU only where the processor has native bf16 arithmetic (AVX512-BF16 or
AMX). On a CPU without it PyTorch emulates bf16 and is far slower than fp32: measured on this
project's 2-core AMD EPYC dev machine (AVX2 only), a 4-layer width-256 transformer training step
took 17.7 s under bf16 autocast vs 0.86 s in fp32, and the conv autoencoder 22.2 s vs 1.03 s
(`benchmarks/bench_precision.py`, results in BENCHMARKS.md; it re-measures on any machine).
Quantizers run their lookups in fp32 regardless (a bf16 shortlist may speed the argmax, certified
to pick what fp32 picks: `dialect.quant.search`).
"""

from __future__ import annotations

import contextlib

import torch

from dialect.core.errors import DialectError
from dialect.core.hardware import cpu_has_native_bf16, fast_bf16

__all__ = ["autocast", "cpu_has_native_bf16", "resolve_precision"]


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' | 'fp32' | 'bf16' -> 'fp32' or 'bf16' for this device."""
    if precision not in ("auto", "fp32", "bf16"):
        raise DialectError(f"precision must be auto, fp32 or bf16, got '{precision}'")
    if precision != "auto":
        return precision
    return "bf16" if fast_bf16(device) else "fp32"


def autocast(precision: str, device: torch.device):
    """Context manager for the forward pass at the resolved precision."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
