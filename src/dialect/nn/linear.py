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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEW_ROWS = 8  # up to this many rows (tokens x batch) take the transposed path


class Linear(nn.Linear):
    """Drop-in nn.Linear; see the module docstring for the decoding fast path."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wt: torch.Tensor | None = None
        self._wt_key: tuple | None = None

    def _transposed(self) -> torch.Tensor:
        w = self.weight
        key = (w._version, w.data_ptr(), w.dtype, w.device)
        if self._wt is None or self._wt_key != key:
            self._wt = w.detach().t().contiguous()  # (in, out)
            self._wt_key = key
        return self._wt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = (
            x.device.type == "cpu"
            and not torch.is_grad_enabled()
            and x.numel() <= FEW_ROWS * self.in_features
            and x.dtype == self.weight.dtype
            and not torch.is_autocast_enabled("cpu")
        )
        if not fast:
            if torch.is_grad_enabled():
                self._wt = None  # training: free the copy (it is rebuilt after the steps anyway)
            return F.linear(x, self.weight, self.bias)
        out = x @ self._transposed()
        return out if self.bias is None else out + self.bias
