"""Decoding steps compiled ahead of time (AOTInductor): the compiled step without Python around it.

A `torch.compile`d one-token step (`DecoderLM.compile_decoding()`) runs its fused kernel from
Python: dynamo's frame, AOTAutograd's runtime wrappers and inductor's Python wrapper, which
allocates the step's ~100 intermediate buffers one call at a time. For the 21M-parameter Llama of
`benchmarks/bench_decode.py` on this 2-core CPU that was ~17% of a 2-3 ms step (py-spy). Here the
same step is exported (`torch.export`) and built by AOTInductor into a shared library whose C++
wrapper allocates and launches the kernels; Python hands it the tensors and nothing else
(`AOTIModelPackageLoader.boxed_run`, skipping the loaded model's `__call__`, which parses its
input spec from JSON on every call). Same graph, same kernels: the same greedy tokens as the
`torch.compile`d and eager steps (tested). Measured (`benchmarks/bench_decode_kernels.py`, 12
repeats): 1.03x / 1.12x / 1.19x less time per step than the compiled step with its guards skipped at
64 / 256 / 1,024 positions; on the shipped model's smaller LMs, whose steps are shorter, AR-DTok's
`generate` 1.21-1.60x faster at batch 1 (`bench_latency.py`). perf over such steps: 68% of the
samples in the kernels, 22% in OpenMP waiting at the barriers of the step's one parallel region
(29 parallel loops, 37 single-thread sections), 3% in Python.

One library per (batch, dtypes, token bias, token shift): the cache capacity is a dynamic
dimension of the export, so every capacity shares it (a `torch.compile`d step compiles each
capacity anew), and attention reads the positions written so far, not the whole capacity
(`dialect.nn.blocks.ATTEND_WRITTEN_ONLY`: 1.24-1.26x less time per step over a 1,024-token
generation). Building one takes longer than a `torch.compile` trace (a C++ compile: 17-19 s for
the 21M-parameter Llama here, 12-14 s for the tests' micro models), once per process (once per
machine for the libraries kept in the cache folder, below).

Weights: a step of one or two rows in fp32 (the row-dot products) reads only the model's parameters
and buffers, which the library is handed by name and reads in place (user-managed constants: no
copy, nothing large on disk). Other steps (half inference's fp16 copies, the BLAS slabs from three
rows on) read tensors that export lifts from plain attributes, with no name to hand them over by:
those libraries are built with a copy of their weights inside. Either way a library describes the
model as it was built: `refresh` (run by `DecoderLM.new_caches`, so once per decoding) drops them
all when a parameter (identity, storage, version), half inference or one of `dialect.nn`'s kernel
switches changed since. Weights changed in place between two steps of one decoding go unseen by a
copy, as under `DecoderLM.decoding_steps`.

Libraries that carry no weights depend only on the step's graph and shapes, so they are kept
across processes (`cache_dir()`: `$DIALECT_AOT_CACHE`, else `~/.cache/dialect/aot`; a few MB
each), keyed by the exported graph, the inputs' and parameters' shapes, inductor's settings, the
CPU's vector ISA and the torch version: a later process (a restarted server) exports the step
and loads its library (2.7 s for the 21M-parameter Llama here, 2 MB on disk) instead of building
it (18-20 s).

Steps run here only without gradients and outside autocast (what export traced); the caller
(`DecoderLM.forward`) takes the `torch.compile`d step otherwise. A build that fails (no C++
compiler, an op AOTInductor cannot lower) warns once and leaves the model on that step too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

import dialect.nn.blocks as blocks
import dialect.nn.linear as linear
from dialect.nn.blocks import StaticKVCache

MIN_CAPACITY = 2  # export specialises dimensions of size 0 and 1: smaller caches keep the other step
CACHE_ENV = "DIALECT_AOT_CACHE"  # folder of built libraries; "" turns the cache off


def cache_dir() -> Path | None:
    """Where built libraries that carry no weights are kept across processes: `$DIALECT_AOT_CACHE`,
    else `$XDG_CACHE_HOME/dialect/aot` (default `~/.cache/dialect/aot`); None when the variable is
    set empty."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return Path(value) if value else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dialect" / "aot"


def _cache_key(exported: torch.export.ExportedProgram, step: nn.Module) -> str:
    """What a library built from `exported` depends on: its graph (ops, literals, signature, shape
    ranges), the metadata of its inputs and of the parameters it is handed by name, inductor's
    settings, the CPU's vector ISA and the torch version."""
    meta = lambda t: (tuple(t.shape), t.stride(), str(t.dtype), str(t.device))  # noqa: E731
    inputs = [t for t in torch.utils._pytree.tree_leaves(exported.example_inputs) if torch.is_tensor(t)]
    parts = [
        torch.__version__,
        torch.backends.cpu.get_cpu_capability(),
        exported.graph_module.code,
        str(exported.graph_signature),
        str(exported.range_constraints),
        repr([meta(t) for t in inputs]),
        repr([(n, meta(t)) for n, t in (*step.named_parameters(), *step.named_buffers())]),
        repr(sorted(torch._inductor.config.save_config_portable().items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class _Step(nn.Module):
    """The traced function: one cached step of `lm` on caches given as tensors."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self,
        ids: torch.Tensor,
        ks: list[torch.Tensor],
        vs: list[torch.Tensor],
        pos: torch.Tensor,
        token_bias: torch.Tensor | None,
        prev: torch.Tensor | None,
    ) -> torch.Tensor:
        caches = [StaticKVCache(k, v, pos) for k, v in zip(ks, vs, strict=True)]
        caches[0].prev = prev
        return self.lm(ids, caches=caches, token_bias=token_bias, last_only=True)


def _state(model: nn.Module) -> tuple:
    """What the built libraries depend on besides their inputs' shapes: every parameter and buffer
    (identity, storage, in-place version), half inference and the kernel switches."""
    tensors = tuple(
        (id(t), t.data_ptr(), linear._version(t), t.dtype) for t in (*model.parameters(), *model.buffers())
    )
    halves = tuple(getattr(m, "half_inference", False) for m in model.modules())
    switches = (linear.ROWDOT_ROWS, linear.STORE_ROWDOT_INPUT, linear.FEW_ROWS, blocks.ONE_QUERY_ATTENTION)
    switches += (blocks.ATTEND_WRITTEN_ONLY,)
    return tensors, halves, switches, torch.get_num_threads()


class AotDecodingSteps:
    """The ahead-of-time compiled one-token steps of one `DecoderLM` (module docstring).

    `usable(caches)` says whether a step on these caches can run here now; `__call__(ids,
    caches, token_bias)` runs it: ids (B, 1) long, caches `StaticKVCache`s (B, heads, capacity,
    head_dim) sharing one counter, token_bias (B, 1, dim) or None -> logits (B, 1, V); the caches,
    their counter and the token-shift buffer are updated in place, as by the compiled step."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        # input key -> (library, the tensors it was handed: kept alive while it may read them)
        self._libraries: dict[tuple, tuple[torch._C._aoti.AOTIModelPackageLoader, dict]] = {}
        self._state: tuple | None = None
        self.failed: str | None = None  # why a build failed: the model keeps the other step
        self._building = threading.Lock()

    def __deepcopy__(self, memo: dict) -> AotDecodingSteps:
        """A copied model (`copy.deepcopy`) gets steps of its own, built when it first decodes: the
        libraries and the build lock are not copyable, and a library may read the original's
        weights."""
        return AotDecodingSteps(memo.get(id(self.model), self.model))

    def refresh(self) -> None:
        """Drop the built libraries if the model changed since they were built."""
        state = _state(self.model)
        if state != self._state:
            self._libraries.clear()
            self._state = state

    def usable(self, caches: list[StaticKVCache]) -> bool:
        return (
            self.failed is None
            and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled(caches[0].k.device.type)
            and caches[0].k.shape[2] >= MIN_CAPACITY
        )

    def __call__(
        self, ids: torch.Tensor, caches: list[StaticKVCache], token_bias: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The step's logits, or None if building its library failed (the caller steps otherwise)."""
        # the library indexes its inputs with the strides of the contiguous stand-ins it was built
        # on (a token_bias column sliced from a longer bias has others): no copy when they match
        ids = ids.contiguous()
        token_bias = None if token_bias is None else token_bias.contiguous()
        prev = caches[0].prev
        key = (ids.shape, ids.device, caches[0].k.dtype, caches[0].k.shape[:2], caches[0].k.shape[3:])
        key += (None if token_bias is None else (token_bias.shape, token_bias.dtype), prev is not None)
        library = self._libraries.get(key)
        if library is None:
            with self._building:  # threads wanting the same library build it once
                library = self._libraries.get(key) or self._build(ids, caches, token_bias, prev)
            if library is None:
                return None
            self._libraries[key] = library
        flat = [ids, *(c.k for c in caches), *(c.v for c in caches), caches[0].pos]
        if token_bias is not None:
            flat.append(token_bias)
        if prev is not None:
            flat.append(prev)
        return library[0].boxed_run(flat)[0]

    def _load(self, exported: torch.export.ExportedProgram, step: nn.Module, embed: bool):
        """The built and loaded library of `exported`: from the cache folder when a package built
        there matches (weightless builds only; one that does not load is built anew), else built
        now (and stored there)."""
        configs = {"aot_inductor.package_constants_in_so": embed}
        folder = None if embed else cache_dir()
        if folder is None:
            return torch._inductor.aoti_load_package(
                torch._inductor.aoti_compile_and_package(exported, inductor_configs=configs)
            )
        path = folder / f"{_cache_key(exported, step)}.pt2"
        if path.is_file():
            try:
                return torch._inductor.aoti_load_package(str(path))
            except Exception:  # noqa: BLE001 - a cached package that does not load: built anew
                path.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".pt2", dir=folder)  # then renamed: readers never see half
        os.close(fd)
        try:
            torch._inductor.aoti_compile_and_package(exported, package_path=tmp, inductor_configs=configs)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return torch._inductor.aoti_load_package(str(path))

    def _build(self, ids, caches, token_bias, prev) -> tuple | None:
        """Export the step on stand-ins of these inputs (fresh tensors, so neither the live caches
        nor inference tensors enter the trace) and build its library -> (library, the tensors it
        reads by pointer); None (and a warning) if that fails."""
        depth = len(caches)
        with torch.inference_mode(False), torch.no_grad():
            k, v = caches[0].k, caches[0].v

            def like(x: torch.Tensor | None) -> torch.Tensor | None:
                return None if x is None else torch.zeros(x.shape, dtype=x.dtype, device=x.device)

            args = (
                like(ids),
                [like(k) for _ in range(depth)],
                [like(v) for _ in range(depth)],
                like(caches[0].pos),
                like(token_bias),
                like(prev),
            )
            capacity = torch.export.Dim("capacity", min=MIN_CAPACITY)
            per_cache = [{2: capacity}] * depth
            dynamic = (None, per_cache, per_cache, None, None, None)
            try:
                step = _Step(self.model)
                exported = torch.export.export(step, args, dynamic_shapes=dynamic)
                # the step reads parameters and buffers alone (fp32 row-dots): the library uses the
                # model's own tensors; tensors lifted from plain attributes (half copies, slabs) have
                # no name to hand them over by, so those builds carry a copy of every weight
                embed = bool(exported.constants)
                library = self._load(exported, step, embed)
                weights = {}
                if not embed:  # the library keeps pointers, not references: kept beside it
                    named = dict(step.named_parameters(remove_duplicate=False))
                    named |= dict(step.named_buffers(remove_duplicate=False))
                    weights = {name: named[name] for name in library.get_constant_fqns()}
                    library.load_constants(weights, check_full_update=True, user_managed=True)
                return library.loader, weights
            except Exception as error:  # noqa: BLE001 - any failure leaves the model on the other step
                self.failed = f"{type(error).__name__}: {error}"
                warnings.warn(
                    f"ahead-of-time decoding step: building it failed ({self.failed.splitlines()[0]}); "
                    "decoding through the torch.compile'd step instead",
                    stacklevel=4,
                )
                return None
