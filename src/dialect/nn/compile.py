"""Per-layer `torch.compile` for training (`train.compile`): each transformer layer's full-sequence
forward becomes one compiled graph, its backward one more.

Why per layer, not the whole model: the models' outer forwards hold data-dependent steps that
split a whole-model graph anyway (Tar's loss positions, the two padded length groups, the frozen
tokenizer's encodes), while the layers are where the small ops are: RMSNorm, RoPE, SiLU-gating and
the residual adds run as ~30 kernels per layer eagerly and as a few fused loops compiled. Measured
on this 2-core CPU (bf16 autocast, `benchmarks/bench_compile.py`, BENCHMARKS.md), one training step
of the tiny models, eager over compiled: Tar LM 1.15x (0.452 -> 0.392 s, its frozen TA-Tok's
layers included), TA-Tok 1.14x, Dif-DTok 1.13x, AR-DTok 1.08x, teacher 1.05x. Shapes are
dynamic (sequence lengths vary per batch), so a layer compiles once per
kind of call (grad on or off, with or without RoPE, attention on either side of the math-kernel
length), not per length: 1-14 s per model here (`bench_compile.py`'s first steps).

Only calls without a KV cache take the compiled path; decoding stays eager (`DecoderLM` has its
own compiled step, `compile_decoding`). The compiled function is the class's, shared by all its
instances, and which instances use it is a weak set: a deep copy of a model (an EMA shadow) or a
model saved and loaded again runs eagerly, never through another instance's graph.

Inductor compiles C++ on the CPU, so a CPU run needs a C++ compiler; without one `compile_layers`
is not called (the trainer logs why and trains eagerly).
"""

from __future__ import annotations

import functools
import os
import shutil
import weakref
from collections.abc import Callable

import torch
from torch import nn

_ENABLED: weakref.WeakSet = weakref.WeakSet()  # the layer instances that run compiled


class CompilableLayer(nn.Module):
    """A transformer layer `compile_layers` can compile: subclasses implement `_forward` and call
    `self.forward_fn(cache)` to get it, compiled when enabled for this instance and cache is None."""

    _compiled: Callable | None = None  # per class: torch.compile(cls._forward), made on first use

    def _forward(self, *args, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def forward_fn(self, cache: object = None) -> Callable:
        """This layer's `_forward`, compiled when `compile_layers` enabled it and no cache is given."""
        if cache is not None or self not in _ENABLED:
            return self._forward
        cls = type(self)
        if cls.__dict__.get("_compiled") is None:
            cls._compiled = torch.compile(cls._forward, dynamic=True)
        return functools.partial(cls._compiled, self)


RECOMPILE_LIMIT = 64  # graphs per compiled function; torch's default of 8 is too few here


def raise_recompile_limit() -> None:
    """Raise dynamo's process-wide limit of graphs per compiled function to at least
    RECOMPILE_LIMIT (never lowers it): a compiled function shared by many kinds of call passes
    torch's default of 8, after which dynamo runs it eagerly or, with fullgraph, fails."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)


def compile_layers(model: nn.Module) -> int:
    """Run every `CompilableLayer` in `model` through its compiled forward from now on (see the
    module docstring); returns how many there are.

    One class's compiled forward serves every kind of call of every model in the process: the
    Tar LM's layers (RoPE, gradients, two attention kernels by length) beside its frozen TA-Tok's
    (no RoPE, no gradients), and a batch of one specialises too. That passes torch's default of 8
    graphs per function, after which dynamo silently runs eagerly, so the limit is raised
    (`raise_recompile_limit`)."""
    layers = [m for m in model.modules() if isinstance(m, CompilableLayer)]
    raise_recompile_limit()
    _ENABLED.update(layers)
    return len(layers)


def uncompile_layers(model: nn.Module) -> None:
    """Back to the eager forward for every layer of `model`. The compiled graphs stay cached
    (`torch._dynamo.reset()` drops them: the trainer does after a compiled run, so the stages of
    `dialect train all`, one process, each start with their own)."""
    for m in model.modules():
        _ENABLED.discard(m)


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU ($CXX, else c++ / g++ / clang++), or None."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return next((path for name in names if (path := shutil.which(name))), None)
