"""The one decoder-only transformer, reused by every autoregressive model in the project.

A causal :class:`~dialect.nn.blocks.Stack` over `[prefix embeddings, token embeddings]`: the prefix
is any conditioning sequence given as vectors (e.g. TA-Tok code embeddings for the AR
de-tokenizer), the tokens are ids in the LM's vocabulary. Attention is causal over the whole
sequence, prefix included, and positions (RoPE or learned) count from the first prefix element.

Which logit predicts which token (P = prefix length, T = number of ids): `forward` returns logits
at every position whose next element is a token, i.e. the last prefix element and then every id.

- with a prefix: (B, T + 1, V); row 0 (the last prefix element) predicts ids[0], row t predicts
  ids[t], row T predicts the token after ids;
- without a prefix: (B, T, V); row t predicts ids[t + 1], row T - 1 the token after ids.

So `logits[:, -1]` is always the distribution of the next, not yet given, token, and the logits of
`forward(ids[:, :-1], prefix)` are the predictions of the last `n` ids, n = logits.shape[1].

`LMConfig.token_shift` (off by default) adds to each input vector a learned projection of the one
before it, so attention can match "the token after k" without first growing a previous-token head;
a cached call continues from the last input vector of the call before (kept in the first layer's
cache).

Decoding (:class:`~dialect.lm.decoding.Decoding`, shared with the Hugging Face adapter) prefills
the prefix (and any given ids) in one forward into preallocated per-layer
:class:`~dialect.nn.blocks.KVCache`s, then feeds one token per step; classifier-free guidance runs
the conditional and unconditional rows as one batch of 2B. After :meth:`DecoderLM.compile_decoding`
the caches are fixed-shape :class:`~dialect.nn.blocks.StaticKVCache`s and each one-token step is
one `torch.compile`d graph: on this 2-core CPU 1.1-1.3x the eager step (`BENCHMARKS.md`);
`compile_decoding(ahead_of_time=True)` builds that graph with AOTInductor instead and calls it
without Python around its kernels (`dialect.lm.aot`). Fixed shapes are also what CUDA graphs need
(`compile_decoding(mode="reduce-overhead")`); untested here, no GPU was available.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.pretrained import Pretrained
from dialect.lm.aot import AotDecodingSteps
from dialect.lm.decoding import Decoding, check_select, select_rows
from dialect.nn.blocks import KVCache, Stack, StaticKVCache, init_transformer_weights
from dialect.nn.compile import raise_recompile_limit
from dialect.nn.linear import Linear, prepare_transposes, set_half_inference
from dialect.nn.rope import rope_1d

CAPACITY_STEP = 128  # compiled decoding: cache capacities are multiples of this (see new_caches)
# compiled one-token steps run one at a time in the process: the stance that skips guards
# (`DecoderLM.decoding_steps`) is process-wide, not per thread
_STEP_LOCK = threading.Lock()


@dataclass
class LMConfig:
    vocab_size: int = 1024  # token ids in [0, vocab_size)
    dim: int = 256  # width
    depth: int = 4  # blocks
    heads: int = 4  # attention heads (head_dim = dim / heads, even for RoPE)
    max_len: int = 1024  # longest prefix + tokens sequence
    prefix_dim: int = 0  # width of prefix vectors, projected to dim by a Linear; 0 = given at dim
    positions: str = "rope"  # "rope" (rotary, in attention) | "learned" (absolute, added to inputs)
    qk_norm: bool = False  # RMSNorm on queries and keys per head
    tie_embeddings: bool = False  # output head shares the token embedding matrix
    # token shift: each input vector also gets a learned projection of the one before it (x_t +
    # W x_{t-1}), as RWKV's token shift and the short convolutions of H3 / Based. Attention then
    # needs no previous-token head to match "the token after k": on associative recall (8 key/value
    # pairs, the tiny Tar's shape) the LM reaches 1.00 by step 250 with it and stays at chance (0.14)
    # through 1,500 steps without, as does a `transformers` Llama (experiments/results/recall_probe.md)
    token_shift: bool = False


class DecoderLM(nn.Module, Pretrained, Decoding):
    """Causal LM over ids (B, T) with an optional prefix (B, P, prefix_dim or dim); see the module
    docstring for which logit predicts which token."""

    config_class = LMConfig

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if config.positions not in ("rope", "learned"):
            raise ValueError(f"LMConfig.positions must be 'rope' or 'learned', got {config.positions!r}")
        if config.dim % config.heads or (config.dim // config.heads) % 2:
            raise ValueError(f"LMConfig: dim {config.dim} / heads {config.heads} must be an even integer")
        self.config = config
        c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.dim)
        self.prefix_proj = nn.Linear(c.prefix_dim, c.dim) if c.prefix_dim else None
        self.pos_emb = nn.Embedding(c.max_len, c.dim) if c.positions == "learned" else None
        self.stack = Stack(c.dim, c.depth, c.heads, qk_norm=c.qk_norm)
        self.head = Linear(c.dim, c.vocab_size, bias=False)
        self.shift = Linear(c.dim, c.dim, bias=False) if c.token_shift else None
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        if self.pos_emb is not None:
            nn.init.normal_(self.pos_emb.weight, std=0.02)
        init_transformer_weights(self.head, c.depth)
        if self.prefix_proj is not None:
            init_transformer_weights(self.prefix_proj, c.depth)
        if c.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        self._step = None  # the compiled one-token decoding step (`compile_decoding`)
        self._aot: AotDecodingSteps | None = None  # its ahead-of-time build (`compile_decoding`)
        self._trusted: tuple | None = None  # (caches, inputs' signature) inside `decoding_steps`

    def compile_decoding(
        self, enabled: bool = True, ahead_of_time: bool = False, **compile_kwargs
    ) -> DecoderLM:
        """Decode through one compiled step with fixed-shape caches (inference only).

        `new_caches` then returns :class:`StaticKVCache`s and every one-token cached forward (the
        body of `generate`'s loop) runs a `torch.compile`d step: the ~30 small ops per layer of an
        eager step (norms, RoPE, cache writes, views) become a few fused kernels, which is most of
        the time of a batch-1 step on a CPU beside the weight matmuls. The first call for each
        (batch, capacity) traces and compiles (seconds to a minute); later calls replay. Greedy
        tokens equal the eager path's (tested). `compile_kwargs` go to `torch.compile` (default:
        fullgraph, static shapes).

        The step's code is shared by every DecoderLM, and each (batch, capacity) adds an entry to
        dynamo's cache for it (a max_len of 1088 alone has nine capacities): this raises dynamo's
        process-wide recompile limit (`dialect.nn.compile.raise_recompile_limit`; its default of 8
        made the ninth shape fail). Past the limit a step warns once and runs eagerly on the same
        fixed-shape caches (same tokens, slower) instead of failing.

        `ahead_of_time=True`: steps without gradients and outside autocast run the same graph built
        by AOTInductor into a library called without Python around its kernels (`dialect.lm.aot`:
        one build per batch size for every capacity, ~15-30 s each for a 21M-parameter model, and a
        copy of the weights); the `torch.compile`d step covers the other cases."""
        if not enabled:
            self._step = self._aot = None
            return self
        raise_recompile_limit()
        self._warned_eager_step = False
        kwargs = {"fullgraph": True, "dynamic": False, **compile_kwargs}
        self._step = torch.compile(self._decode_step, **kwargs)
        self._aot = AotDecodingSteps(self) if ahead_of_time else None
        return self

    @contextlib.contextmanager
    def decoding_steps(self, caches: list | None):
        """Scope of one decoding loop over `caches` (`generate` enters it; so can a hand-written
        loop): after the first compiled one-token step on these caches has run with all of dynamo's
        guards, the later ones run with only those that tell its compiled entries apart
        (`torch.compiler.set_stance(skip_guard_eval_unsafe=True)`): 1.01-1.13x less time per step
        for the 21M-parameter Llama on this CPU (`benchmarks/bench_decode_kernels.py`; the ~900
        guards on the model's modules, caches and flags take ~0.1-0.2 ms of a 2-3 ms step).

        PyTorch's condition for skipping them is that no call would need a recompile. A loop of
        one-token steps on the same fixed-shape caches meets it: every step passes the same model,
        caches and input shapes, and the first step's full check found (or compiled) their entry.
        So inside the scope do not change the model (train/eval, `half_inference`, weights of
        another shape or dtype, hooks), the grad or autocast mode, or `dialect.nn`'s kernel
        switches between steps; if the first step decoded eagerly (the recompile limit), so do
        the rest. A step whose inputs differ from the first's in shape, strides, dtype, device,
        requires_grad or inference-ness, or that runs in another grad mode, is checked in full
        again. The stance is process-wide: compiled decoding steps of every DecoderLM take one
        lock, so threads decoding at once step in turn and none runs its first, fully checked step
        under another's skipped guards (other compiled code run by another thread at that moment
        is not covered)."""
        saved, self._trusted = self._trusted, (caches, None)
        try:
            yield
        finally:
            self._trusted = saved

    def _compiled_step(
        self, ids: torch.Tensor, caches: list[StaticKVCache], token_bias: torch.Tensor | None
    ) -> torch.Tensor:
        """The compiled one-token step, with its guards skipped once they have passed for these
        caches and inputs of this signature inside `decoding_steps`."""
        trusted = self._trusted
        if trusted is None or trusted[0] is not caches:  # outside a scope over these caches
            with _STEP_LOCK:
                return self._step(ids, caches, token_bias)
        signature = (
            _kind(ids),
            None if token_bias is None else _kind(token_bias),
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
        )
        checked = trusted[1] == signature  # a step of this signature already ran with every guard
        skip = torch.compiler.set_stance(skip_guard_eval_unsafe=True) if checked else contextlib.nullcontext()
        with _STEP_LOCK, skip:
            out = self._step(ids, caches, token_bias)
        self._trusted = (caches, signature)
        return out

    def half_inference(self, enabled: bool = True) -> DecoderLM:
        """Inference products on half-precision copies of the weights (CPU, fp32 model, no
        gradients, no autocast): fp16 for one row, bf16 for more (`dialect.nn.linear`). A batch-1
        step streams half the bytes and a prefill runs on the bf16 matmul kernel; logits move by
        about the rounding of bf16 activations, the precision these models train in under autocast.
        Applies to eager and compiled decoding alike. Off by default."""
        set_half_inference(self, enabled)
        return self

    def _decode_step(
        self, ids: torch.Tensor, caches: list[StaticKVCache], token_bias: torch.Tensor | None
    ) -> torch.Tensor:
        return self(ids, caches=caches, token_bias=token_bias, last_only=True)

    @property
    def head_dim(self) -> int:
        return self.config.dim // self.config.heads

    def new_caches(
        self, batch: int, capacity: int, device=None, dtype: torch.dtype | None = None
    ) -> list[KVCache] | list[StaticKVCache]:
        """One empty KVCache per block, (batch, heads, capacity, head_dim) each (StaticKVCaches
        sharing one position counter after `compile_decoding`).

        device defaults to the model's; dtype to the autocast dtype when autocast is on for that
        device (keys/values are then computed in it), else the model's parameter dtype."""
        param = self.tok_emb.weight
        device = torch.device(device or param.device)
        if dtype is None:
            autocast_on = torch.is_autocast_enabled(device.type)
            dtype = torch.get_autocast_dtype(device.type) if autocast_on else param.dtype
        c = self.config
        if self._step is not None:  # compiled decoding: fixed shapes, fresh weight transposes
            prepare_transposes(self)
            if self._aot is not None:
                self._aot.refresh()
            # capacity rounded up to a multiple of CAPACITY_STEP, so prompts of different lengths
            # share one compiled step (masked positions cost little beside the weights)
            capacity = max(capacity, min(-(-capacity // CAPACITY_STEP) * CAPACITY_STEP, c.max_len))
            shape = (c.depth, batch, c.heads, capacity, self.head_dim)
            caches = StaticKVCache.empty_stack(*shape, device, dtype)
            if self.shift is not None:  # a fixed buffer the compiled step updates in place
                caches[0].prev = torch.zeros(batch, 1, c.dim, device=device, dtype=param.dtype)
            return caches
        return [KVCache.empty(batch, c.heads, capacity, self.head_dim, device, dtype) for _ in range(c.depth)]

    def forward(
        self,
        ids: torch.Tensor | None,
        prefix: torch.Tensor | None = None,
        caches: list[KVCache] | list[StaticKVCache] | None = None,
        start: int = 0,
        token_bias: torch.Tensor | None = None,
        last_only: bool = False,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) long (None = no ids), prefix (B, P, prefix_dim or dim) -> logits (B, N, V).

        N = T + 1 with a prefix, else T (see the module docstring); `last_only`: N = 1, the logits
        of the next token only (decoding's prefill needs no others, and the head over every
        position is a large share of a long prefill). `select`, bool (B, N): only the logits of
        those rows, as (M, V) in row-major order, M = select.sum(); training passes its loss
        positions, so the head and the softmax skip the rest (prompt and input-image tokens).
        `start` is the position of the first input element (prefix or ids) in the sequence; with
        `caches` it must equal the number of positions they already hold, and the inputs are
        appended to them. `token_bias` (B, T, dim), optional, is added to the embeddings of the ids
        (a per-position condition, e.g. the AR de-tokenizer's feature under each image token)."""
        static = bool(caches) and isinstance(caches[0], StaticKVCache)
        compiling = torch.compiler.is_compiling()
        if not compiling:
            n_in = (0 if ids is None else ids.shape[1]) + (0 if prefix is None else prefix.shape[1])
            self._check_caches(caches, start, n_in)
            one_step = prefix is None and ids is not None and ids.shape[1] == 1
            if static and one_step and self._aot is not None and self._aot.usable(caches):
                logits = self._aot(ids, caches, token_bias)
                if logits is not None:
                    return logits
            if static and one_step and self._step is not None:
                try:
                    return self._compiled_step(ids, caches, token_bias)
                except torch._dynamo.exc.FailOnRecompileLimitHit:  # raised before the step ran
                    if not self._warned_eager_step:
                        self._warned_eager_step = True
                        warnings.warn(
                            "compiled decoding: dynamo's recompile limit "
                            f"({torch._dynamo.config.recompile_limit}) is reached; cache shapes "
                            "without a compiled step decode eagerly (torch._dynamo.reset() clears it)",
                            stacklevel=2,
                        )
        x = self._embed(ids, prefix, token_bias)  # (B, P + T, dim)
        if self.shift is not None:
            x = self._token_shift(x, caches, static)
        n = x.shape[1]
        positions = caches[0].positions(n) if static else torch.arange(start, start + n, device=x.device)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        else:
            rope = rope_1d(positions, self.head_dim)
        # the positions whose next element is a token: from the last prefix element on
        first = n - 1 if last_only else prefix.shape[1] - 1 if prefix is not None else 0
        rows = None
        if select is not None and not last_only:  # the top block computes only these rows
            check_select(select, (x.shape[0], n - first))
            rows = F.pad(select, (first, 0)).flatten().nonzero().squeeze(1)  # row-major, as x[select]
        x = self.stack(x, rope=rope, causal=True, caches=caches, last_only=last_only, rows=rows)
        if static:
            caches[0].advance(n)  # the layers share one position counter
        if rows is not None:
            return self.head(x)  # (M, V)
        if last_only:
            return self.head(select_rows(x, select))  # (B, 1, V): the stack kept the last row only
        return self.head(x[:, first:])  # (B, N, V)

    def _token_shift(self, x: torch.Tensor, caches: list | None, static: bool) -> torch.Tensor:
        """x (B, n, dim) -> x + shift(x one position back) (`LMConfig.token_shift`). Before a
        sequence's first position the previous vector is zero; a cached call continues from the
        last input vector of the call before, which the first layer's cache keeps (`prev`)."""
        held = caches[0].prev if caches else None
        first = x.new_zeros(x.shape[0], 1, x.shape[2]) if held is None else held.to(x.dtype)
        shifted = x + self.shift(torch.cat([first, x[:, :-1]], dim=1)).to(x.dtype)
        if caches and static and held is not None:  # `new_caches`' buffer: compiled steps write it
            held.copy_(x[:, -1:])  # after its use above: `first` may be this very buffer
        elif caches:
            caches[0].prev = x[:, -1:]
        return shifted

    def _check_caches(self, caches: list | None, start: int, n: int) -> None:
        if n == 0:
            raise ValueError("DecoderLM.forward needs a prefix or at least one id")
        if start + n > self.config.max_len:
            raise ValueError(f"sequence of {start + n} positions exceeds max_len {self.config.max_len}")
        if caches is None:
            return
        if len(caches) != self.config.depth or caches[0].length != start:
            raise ValueError(
                f"need {self.config.depth} caches holding exactly start={start} positions, "
                f"got {len(caches)} holding {caches[0].length if caches else 0}"
            )
        if start + n > caches[0].k.shape[2]:
            raise ValueError(f"KV cache full: {start} + {n} > capacity {caches[0].k.shape[2]}")

    def _embed(
        self, ids: torch.Tensor | None, prefix: torch.Tensor | None, token_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = []
        if prefix is not None:
            width = self.config.prefix_dim or self.config.dim
            if prefix.dim() != 3 or prefix.shape[-1] != width or prefix.shape[1] == 0:
                raise ValueError(f"prefix must be (B, P >= 1, {width}), got {tuple(prefix.shape)}")
            parts.append(self.prefix_proj(prefix) if self.prefix_proj is not None else prefix)
        if ids is not None:
            if ids.dim() != 2:
                raise ValueError(f"ids must be (B, T), got {tuple(ids.shape)}")
            emb = self.tok_emb(ids)
            if token_bias is not None:
                if token_bias.shape != emb.shape:
                    raise ValueError(f"token_bias must be {tuple(emb.shape)}, got {tuple(token_bias.shape)}")
                emb = emb + token_bias.to(emb.dtype)
            parts.append(emb)
        if not parts:
            raise ValueError("DecoderLM.forward needs a prefix or ids")
        # under autocast the projected prefix comes out in half precision, the embedding does not
        dtype = self.tok_emb.weight.dtype
        return parts[0].to(dtype) if len(parts) == 1 else torch.cat([p.to(dtype) for p in parts], dim=1)


def _kind(x: torch.Tensor) -> tuple:
    """What dynamo's guards on a static-shape input tell tensors apart by, short of their values:
    an input of another kind than the first step's may need another compiled entry (an inference
    tensor carries other dispatch keys than a normal one), so that step is checked in full."""
    return x.shape, x.stride(), x.dtype, x.device, x.requires_grad, x.is_inference()
