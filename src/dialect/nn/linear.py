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
to a multiply-and-sum loop, 7x slower than the BLAS here, but keeps `baddbmm` an external BLAS
call. So the slab product is written as `baddbmm(0, rows, slabs, beta=0)`, one code path for eager
and compiled decoding (the copies are built by `prepare_transposes` before a compiled step runs).
Measured here (2 threads, the 17 weight matrices of the 21M-parameter Llama, one row): eager
1.30 ms; compiled 1.39 ms as `baddbmm`, 1.56 ms through a custom operator wrapping `bmm`
(a Python-implemented `torch.library` op costs ~15 us per call), which this replaced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEW_ROWS = 8  # up to this many rows (tokens x batch) take the transposed path


def _slab_matmul(rows: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """rows (N, in) @ the slabs wt (S, in, out / S) -> (N, out): one batched product, a slab per
    intra-op thread (`baddbmm` with beta 0, which inductor leaves to the BLAS; see above)."""
    zero = rows.new_zeros(())
    out = torch.baddbmm(zero, rows.expand(wt.shape[0], *rows.shape), wt, beta=0)  # (S, N, out / S)
    if rows.shape[0] == 1:  # the slabs already lie side by side: no copy
        return out.view(1, -1)
    return out.transpose(0, 1).reshape(rows.shape[0], -1)


class Linear(nn.Linear):
    """Drop-in nn.Linear; see the module docstring for the decoding fast path."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wt: torch.Tensor | None = None  # decoding copy: (S, in, out / S)
        self._wt_key: tuple | None = None

    def _transposed(self) -> torch.Tensor:
        """The decoding copy of the weight: (S, in, out / S), S slabs of output columns."""
        w = self.weight
        slabs = torch.get_num_threads()
        slabs = slabs if slabs > 1 and self.out_features % slabs == 0 else 1
        key = (w._version, w.data_ptr(), w.dtype, w.device, slabs)
        if self._wt is None or self._wt_key != key:
            wt = w.detach().t()  # (in, out)
            self._wt = wt.reshape(self.in_features, slabs, -1).permute(1, 0, 2).contiguous()
            self._wt_key = key
        return self._wt

    def _decode_matmul(self, x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        """x (..., in) @ the slabs wt (S, in, out / S) -> (..., out) (+ bias)."""
        out = _slab_matmul(x.reshape(-1, self.in_features), wt).view(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = (
            x.device.type == "cpu"
            and not torch.is_grad_enabled()
            and x.numel() <= FEW_ROWS * self.in_features
            and x.dtype == self.weight.dtype
            and not torch.is_autocast_enabled("cpu")
        )
        if torch.compiler.is_compiling():
            # traced code cannot check the weight's version: a compiled decoding step uses the
            # copy prepared before it runs (`prepare_transposes`), else the plain layout
            if fast and self._wt is not None:
                return self._decode_matmul(x, self._wt)
            return F.linear(x, self.weight, self.bias)
        if not fast:
            if torch.is_grad_enabled():  # training: free the copy (rebuilt after the steps anyway)
                self._wt = None
            return F.linear(x, self.weight, self.bias)
        return self._decode_matmul(x, self._transposed())


def prepare_transposes(module: nn.Module) -> None:
    """Build (or refresh) the decoding copy of every `Linear` in `module`: the compiled step cannot
    rebuild them inside the trace."""
    for m in module.modules():
        if isinstance(m, Linear):
            m._transposed()
