"""What the processor computes fast: whether bf16 arithmetic is native here.

On a CPU without native bf16 (AVX512-BF16 or AMX) PyTorch emulates it and runs far slower than
fp32 (measured on an AVX2-only 2-core EPYC: a 4-layer transformer training step 17.7 s in bf16 vs
0.86 s in fp32; BENCHMARKS.md, `benchmarks/bench_precision.py`), so every bf16 fast path of the
project (training autocast, half inference, the quantizer's bf16 shortlist) asks here first.
"""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """True where the CPU has AVX512-BF16 or AMX tiles."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls beat fp32 ones on `device`: CUDA, or a CPU with native bf16."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
