"""`Linear`: nn.Linear with a faster layout for batch-1 decoding on the CPU.

Decoding one token at a time multiplies a handful of rows by every weight matrix, so its speed is
the speed of streaming the weights from memory. `nn.Linear` keeps W as (out, in) and computes
x @ W.T; for a few rows, the CPU BLAS reads that layout markedly slower than a contiguous (in, out)
matrix (measured here, 1 thread, a 32768 x 512 fp32 matrix times one vector: 10.5 GB/s as
`F.linear`, 15.4 GB/s as `x @ W_t`). So, only when nothing needs gradients (inference), on the
CPU, outside autocast and for at most `FEW_ROWS` rows, this layer multiplies by a cached
contiguous transpose of its weight. The cache is rebuilt whenever the weight changes (optimizer
step, `load_state_dict`, `.to(...)`), so training and weight loading behave exactly as
`nn.Linear`; the parameters and the state dict are nn.Linear's. Cost: one extra copy of the
weights of the layers that decode.

The copy is also split by output columns into one slab per intra-op thread, (S, in, out / S),
and multiplied as one batched matmul: the BLAS runs a few-row product on one thread however many
it has, while a batch of S products runs on S. Measured here with 2 threads, the 29 weight
matrices of a 21M-parameter Llama (67 MB) times one row: 4.4 ms unsplit, 3.2-3.4 ms in 2 slabs
(4 slabs 3.7, 8 slabs 4.1); times two rows (guidance): 7.6 ms unsplit, 4.9 ms in 2 slabs.

Inside `torch.compile` (`DecoderLM.compile_decoding`) inductor lowers a one-row `bmm` on the CPU
to a multiply-and-sum loop down the slab's strided columns, 7x slower than the BLAS here, but
keeps `baddbmm` an external BLAS call. So the slab product is written as
`baddbmm(0, rows, slabs, beta=0)`, one code path for eager and compiled decoding (the copies are
built by `prepare_transposes` before a compiled step runs).
Measured here (2 threads, the 17 weight matrices of the 21M-parameter Llama, one row): eager
1.30 ms; compiled 1.39 ms as `baddbmm`, 1.56 ms through a custom operator wrapping `bmm`
(a Python-implemented `torch.library` op costs ~15 us per call), which this replaced.

One or two rows in a compiled step skip the slabs: `_rowdot` writes the product as
`(W * x).sum(-1)` over the (out, in) weight, which inductor turns into a vectorised, OpenMP-parallel
loop of dot products along W's contiguous rows, with the cast of a half copy fused into the load.
It streams a large matrix faster than any BLAS call here (one 128 MiB matrix times one row,
GB/s, 1 / 2 threads: this row-dot 34.5 / 40.3; the transposed copy 23.0 / 27.8; `F.linear`
12.9 / 14.7; a streaming sum 32.0 / 51.4) and, compiled inside the 21M-parameter Llama's decoding
step, took 1.16-1.54x less time per token than the slabs (`benchmarks/bench_decode_kernels.py`;
`--batch 2`: 1.16-1.31x; with its input stored and the attention the same on both sides, 3 and 4
rows 0.92-1.15x over four runs, 8 rows slower at 64-256 positions: so from three rows on the
slabs stay). Eager code would materialise W * x, so it is only traced, never run eagerly.

Half-precision inference (`set_half_inference`, off by default). fp32 few-row products run on one
thread at 14-15 GB/s here, a third of what a streaming sum reads, and a 960-row prefill at ~40%
of the fp32 matmul peak. Half-precision copies are faster on both counts, each dtype where this
CPU (AVX512 with BF16) has its fast kernel: measured, the 17 weight matrices of the 21M-parameter
Llama (67 MB fp32) times M rows, 2 threads, in ms:

    rows M           1      2      4      8     64    960
    fp32 F.linear    5.8   11.0    8.6    8.5   22.9    214
    fp16 F.linear    1.4    2.7    4.6    9.0   71.8    973
    bf16 F.linear    2.2    2.7    2.0    2.0    6.8     55

So with half inference on, one row multiplies an fp16 copy of the weight (the faster single-row
kernel, and 3 more mantissa bits than bf16) and more rows a bf16 copy (the models here train under
bf16 autocast, so these are the numerics they were trained in). Inputs are cast to the copy's
dtype and the outputs back to the input's; norms, attention, the KV cache and the residual stream
stay in the model's dtype. Cost: the two half copies together take the memory of one fp32 copy,
in place of the fp32 slabs, which half inference does not build. These speeds need the CPU's
native bf16 units: without them PyTorch emulates bf16, far slower than fp32
(`dialect.train.precision`), so callers turn half inference on only where `cpu_has_native_bf16()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEW_ROWS = 8  # up to this many rows (tokens x batch) take the transposed path
ROWDOT_ROWS = 2  # up to this many rows, a compiled step multiplies as inductor's row-dot loop
STORE_ROWDOT_INPUT = True  # the row-dot reads its input from memory (see `_rowdot`)


def _rowdot(rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """rows (..., in) fp32 times w (out, in) of any float dtype -> (..., out) in rows' dtype, as
    one multiply-and-reduce along w's contiguous rows. Only for traced code: inductor fuses it into
    a loop that reads w once per row (and casts a half w as it loads); run eagerly it would
    materialise (..., out, in).

    Left to itself, inductor inlines a cheap producer of `rows` (the RMSNorm before a block's
    first product, the embedding lookup before the first) into the loop, recomputing it for every
    one of the `out` rows. `as_strided` only accepts a stored buffer, so it makes inductor write
    the few input values once and the loop a plain dot product. Measured here, 16 such products
    (57 MB) behind an RMSNorm alone, in a scratch A/B: 1.17-1.40x less time; a whole decoding step of the
    21M-parameter Llama, where the loops wait on memory: 1.01-1.08x (`STORE_ROWDOT_INPUT`,
    `benchmarks/bench_decode_kernels.py`)."""
    if STORE_ROWDOT_INPUT:
        rows = rows.as_strided(rows.shape, rows.stride())
    return (w.to(rows.dtype) * rows.unsqueeze(-2)).sum(-1)


def _slab_matmul(rows: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """rows (N, in) @ the slabs wt (S, in, out / S) -> (N, out): one batched product, a slab per
    intra-op thread (`baddbmm` with beta 0, which inductor leaves to the BLAS; see above)."""
    zero = rows.new_zeros(())
    out = torch.baddbmm(zero, rows.expand(wt.shape[0], *rows.shape), wt, beta=0)  # (S, N, out / S)
    if rows.shape[0] == 1:  # the slabs already lie side by side: no copy
        return out.view(1, -1)
    return out.transpose(0, 1).reshape(rows.shape[0], -1)


HALF_DTYPES = (torch.float16, torch.bfloat16)  # the copies of half inference: 1 row, more rows


def _version(w: torch.Tensor) -> int | None:
    """w's in-place version counter, which keys the cached copies; None for an inference tensor
    (a model built or copied under `torch.inference_mode`), which keeps none."""
    return None if w.is_inference() else w._version


class Linear(nn.Linear):
    """Drop-in nn.Linear; see the module docstring for the decoding fast path and half inference."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.half_inference = False  # see `set_half_inference`
        self._wt: torch.Tensor | None = None  # decoding copy: (S, in, out / S)
        self._wt_key: tuple | None = None
        self._halves: dict[torch.dtype, torch.Tensor] = {}  # half inference: dtype -> (out, in)
        self._halves_key: tuple | None = None

    def _transposed(self) -> torch.Tensor:
        """The decoding copy of the weight: (S, in, out / S), S slabs of output columns."""
        w = self.weight
        slabs = torch.get_num_threads()
        slabs = slabs if slabs > 1 and self.out_features % slabs == 0 else 1
        key = (_version(w), w.data_ptr(), w.dtype, w.device, slabs)
        if self._wt is None or self._wt_key != key:
            wt = w.detach().t()  # (in, out)
            self._wt = wt.reshape(self.in_features, slabs, -1).permute(1, 0, 2).contiguous()
            self._wt_key = key
        return self._wt

    def _half_copies(self) -> dict[torch.dtype, torch.Tensor]:
        """The half-inference copies of the weight, fp16 and bf16, (out, in) each, rebuilt when the
        weight changes."""
        w = self.weight
        key = (_version(w), w.data_ptr(), w.device)
        if self._halves_key != key:
            self._halves = {dtype: w.detach().to(dtype) for dtype in HALF_DTYPES}
            self._halves_key = key
        return self._halves

    def _decode_matmul(self, x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """x (..., in) @ the slabs wt (S, in, out / S) -> (..., out) (+ bias)."""
        out = _slab_matmul(x.reshape(-1, self.in_features), wt).view(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def _half_matmul(self, x: torch.Tensor, halves: dict[torch.dtype, torch.Tensor]) -> torch.Tensor:
        """x (..., in) times the fp16 copy (one row) or the bf16 copy (more rows) -> (..., out) in
        x's dtype (+ the bias, kept in x's dtype)."""
        w = halves[HALF_DTYPES[0] if x.numel() == self.in_features else HALF_DTYPES[1]]
        out = F.linear(x.to(w.dtype), w).to(x.dtype)
        return out if self.bias is None else out + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inference = (
            x.device.type == "cpu"
            and not torch.is_grad_enabled()
            and x.dtype == self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
        )
        fast = inference and x.numel() <= FEW_ROWS * self.in_features
        if torch.compiler.is_compiling():
            # traced code cannot check the weight's version: a compiled decoding step uses the
            # copies prepared before it runs (`prepare_transposes`), else the plain layout
            half = inference and self.half_inference and self._halves
            if inference and x.numel() <= ROWDOT_ROWS * self.in_features:
                out = _rowdot(x, self._halves[HALF_DTYPES[0]] if half else self.weight)
                return out if self.bias is None else out + self.bias
            if half:
                return self._half_matmul(x, self._halves)
            if fast and self._wt is not None:
                return self._decode_matmul(x, self._wt)
            return F.linear(x, self.weight, self.bias)
        if not inference:
            if torch.is_grad_enabled():  # training: free the copies (rebuilt after the steps anyway)
                self._wt, self._halves, self._halves_key = None, {}, None
            return F.linear(x, self.weight, self.bias)
        if self.half_inference:
            return self._half_matmul(x, self._half_copies())
        if not fast:
            return F.linear(x, self.weight, self.bias)
        return self._decode_matmul(x, self._transposed())


def prepare_transposes(module: nn.Module) -> None:
    """Build (or refresh) the inference copies of every `Linear` in `module` (the half copies under
    half inference, else the fp32 slabs): the compiled step cannot rebuild them inside the trace."""
    for m in module.modules():
        if isinstance(m, Linear):
            m._half_copies() if m.half_inference else m._transposed()


def set_half_inference(module: nn.Module, enabled: bool = True) -> None:
    """Half inference on (or off) for every `Linear` in `module`: on the CPU, with no gradients and
    outside autocast, their products run on fp16 / bf16 copies of the fp32 weights (module
    docstring). Training, the state dict and other devices are unchanged."""
    for m in module.modules():
        if isinstance(m, Linear):
            m.half_inference = enabled
            if not enabled:
                m._halves, m._halves_key = {}, None
