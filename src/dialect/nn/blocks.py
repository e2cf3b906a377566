"""The transformer core, written once: RMSNorm, SwiGLU, attention on SDPA, pre-norm blocks.

Every transformer in the project (the teacher ViT, the TA-Tok decoder, the de-tokenizers, the
unified LM) is a stack of :class:`Block`. Attention takes an optional rotary table, a causal flag
or an explicit mask, and an optional per-layer key/value cache for incremental decoding.
Shapes: x (B, T, dim); q, k, v (B, heads, T, head_dim).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from dialect.nn.compile import CompilableLayer
from dialect.nn.linear import Linear
from dialect.nn.rope import apply_rope


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """W2 (silu(W1 x) * W3 x); hidden defaults to 8/3 * dim rounded up to a multiple of 32."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or 32 * ((int(dim * 8 / 3) + 31) // 32)
        self.w13 = Linear(dim, 2 * hidden, bias=False)
        self.w2 = Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(a) * b)


@dataclass
class KVCache:
    """Keys/values of one layer for positions [0, length): (B, heads, capacity, head_dim)."""

    k: torch.Tensor
    v: torch.Tensor
    length: int = 0
    prev: torch.Tensor | None = None  # the LM's last input vector (B, 1, dim), for token shift

    @classmethod
    def empty(cls, batch: int, heads: int, capacity: int, head_dim: int, device, dtype) -> KVCache:
        shape = (batch, heads, capacity, head_dim)
        return cls(
            torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)
        )

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = k.shape[2]
        if self.length + t > self.k.shape[2]:
            raise ValueError(f"KV cache full: {self.length} + {t} > capacity {self.k.shape[2]}")
        self.k[:, :, self.length : self.length + t] = k
        self.v[:, :, self.length : self.length + t] = v
        self.length += t
        return self.k[:, :, : self.length], self.v[:, :, : self.length]


# An exported one-token step (`dialect.lm.aot`) attends over the positions written so far (a slice
# of the caches whose length is read from the position counter, which export allows and dynamo's
# fullgraph trace does not) instead of the whole capacity under a mask. Generating 1,024 tokens
# after 8 the caches hold 1,152 positions, half of them unwritten on average; measured there, the
# 21M-parameter Llama's steps took 1.24-1.26x less time, at 64-1,024 total positions 0.96-1.23x (two
# scratch A/Bs of 5 interleaved repeats, same tokens).
ATTEND_WRITTEN_ONLY = True


@dataclass
class StaticKVCache:
    """Keys/values of one layer in fixed buffers (B, heads, capacity, head_dim), written where a
    position *tensor* says: no shape and no Python number changes from one decoding step to the
    next, so a compiled step (`DecoderLM.compile_decoding`) is traced once and replayed for every
    token. Attention then reads the whole buffer under a mask (key j visible to the query at
    position p iff j <= p), which is also what keeps a multi-token prefill causal.

    `pos` (1,) long is the next position to write. The caches of one decoding share it and the
    model advances it after every layer has written (`advance`)."""

    k: torch.Tensor
    v: torch.Tensor
    pos: torch.Tensor
    prev: torch.Tensor | None = None  # the LM's last input vector (B, 1, dim), for token shift

    @classmethod
    def empty_stack(
        cls, depth: int, batch: int, heads: int, capacity: int, head_dim: int, device, dtype
    ) -> list[StaticKVCache]:
        """`depth` empty caches sharing one position counter."""
        pos = torch.zeros(1, dtype=torch.long, device=device)
        shape = (batch, heads, capacity, head_dim)
        return [
            cls(
                torch.zeros(shape, device=device, dtype=dtype),
                torch.zeros(shape, device=device, dtype=dtype),
                pos,
            )
            for _ in range(depth)
        ]

    @property
    def length(self) -> int:
        """Positions written so far (reads the counter: not for use inside compiled code)."""
        return int(self.pos)

    def positions(self, t: int) -> torch.Tensor:
        """The positions (t,) the next t inputs take."""
        return self.pos + torch.arange(t, device=self.pos.device)

    def write(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Store k, v (B, heads, t, head_dim) at the next t positions -> (keys, values (B, heads, S,
        head_dim), mask (t, S), True = attend): S = the capacity, or inside an exported one-token
        step the positions written so far (`ATTEND_WRITTEN_ONLY`)."""
        where = self.positions(k.shape[2])
        self.k.index_copy_(2, where, k.to(self.k.dtype))
        self.v.index_copy_(2, where, v.to(self.v.dtype))
        keys, values = self.k, self.v
        if ATTEND_WRITTEN_ONLY and torch.compiler.is_exporting() and k.shape[2] == 1:
            n = where[-1].item() + 1
            torch._check(n >= 1)
            torch._check(n <= self.k.shape[2])
            keys, values = keys[:, :, :n], values[:, :, :n]
        mask = torch.arange(keys.shape[2], device=where.device)[None, :] <= where[:, None]
        return keys, values, mask

    def advance(self, t: int) -> None:
        """Move the shared counter past t written positions (once per forward, after all layers)."""
        self.pos.add_(t)


# Measured on this project's CPU by benchmarks/bench_train_paths.py (torch 2.13, AVX512-BF16, 2
# threads; batch 16, 4 heads, head_dim 32 or 64, forward + backward; BENCHMARKS.md): in bf16 the
# fused flash kernel is 1.5-2.1x slower than SDPA's math path up to 160 positions (128: 11.7 vs
# 7.6 ms), level at 192 and faster beyond (512: 57 vs 154 ms); in quick trials, forward alone and
# fp32 favoured flash at every length. So only bf16 training steps over
# short sequences (the de-tokenizers' 128 positions, most of Tar's samples) take the math path.
MATH_ATTENTION_MAX_LEN = 160


ONE_QUERY_ATTENTION = True  # traced single-query attention as fused reductions (False: SDPA)


def one_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Attention of a single query, q (B, h, 1, d), over k and v (B, h, S, d) under a boolean mask
    broadcasting to (B, h, 1, S) (True = attend) -> (B, h, 1, d), written as two reductions for
    inductor to fuse: scores along k's contiguous rows, the weighted sum of v down its positions.

    For traced decoding steps only. There, inductor keeps SDPA an external flash-attention call
    that streamed the 1,024-position caches of the 21M-parameter Llama's 4 layers at about half the
    speed of these fused loops (cold caches, 2 threads: 1.74 ms against 0.77-1.05 ms per step;
    eager SDPA 0.96-1.27 ms). Per compiled step (`benchmarks/bench_decode_kernels.py`, row-dot
    products either way): 1.01-1.11x less time at 1,024 cached positions, level at 64-256."""
    # accumulated in fp32 whatever the inputs' dtype, as SDPA does (the casts fuse into the loads)
    scores = ((k.float() * q.float()).sum(-1) * q.shape[-1] ** -0.5).unsqueeze(-2)  # (B, h, 1, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    return (v.float() * weights.transpose(-1, -2)).sum(-2, keepdim=True).to(v.dtype)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """SDPA over q (B, h, T, d), k and v (B, h, S, d) -> (B, h, T, d), on the faster backend
    (see MATH_ATTENTION_MAX_LEN and `one_query_attention`); all give the same values up to
    rounding."""
    if (
        ONE_QUERY_ATTENTION
        and q.shape[2] == 1
        and not q.requires_grad
        and q.device.type == "cpu"
        and (mask is None or mask.dtype == torch.bool)
        and torch.compiler.is_compiling()
    ):
        return one_query_attention(q, k, v, mask)
    if (
        q.requires_grad
        and q.dtype == torch.bfloat16
        and q.device.type == "cpu"
        and k.shape[2] <= MATH_ATTENTION_MAX_LEN
    ):
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = Linear(dim, 3 * dim, bias=False)
        self.proj = Linear(dim, dim, bias=False)
        self.qk_norm = qk_norm
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        causal: bool = False,
        mask: torch.Tensor | None = None,
        cache: KVCache | StaticKVCache | None = None,
        last_only: bool = False,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, dim); rope tables cover these T positions; mask broadcasts to (B, heads, T, S)
        (True = attend). With a cache, x holds only the new positions and attends to all cached.
        `last_only`: keys and values of all T positions (into the cache), the output of the last
        query only (B, 1, dim), which sees every key: a prefill's top layer needs no other.
        `rows` (M,) long: the output at those flat indices of (B, T) only, (M, dim), projected
        after the gather."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(torch.stack([q, k]), *rope)  # one rotation for both: fewer kernels
        if isinstance(cache, StaticKVCache):
            if mask is not None:
                raise ValueError("a StaticKVCache makes its own mask; pass none")
            # an eager prefill into an empty cache attends causally over its own T keys, not under
            # a mask over the whole capacity (the causal kernel skips the masked half)
            prefill = T > 1 and not torch.compiler.is_compiling() and cache.length == 0
            k, v, mask = cache.write(k, v)
            if prefill:
                k, v, mask = k[:, :, :T], v[:, :, :T], None
            causal = prefill
        elif cache is not None:
            past = cache.length
            k, v = cache.append(k, v)
            if causal and mask is None and T > 1 and past > 0:
                # new query i sits at position past + i and sees keys [0, past + i]; with past = 0
                # that is plain causal attention, left to SDPA's causal kernel
                mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(past)
            causal = causal and mask is None and T > 1
        if last_only and T > 1:
            if not causal and (mask is None or mask.dim() != 2):
                raise ValueError("last_only needs causal attention (the last query then sees every key)")
            q, T, causal = q[:, :, -1:], 1, False
            mask = None if mask is None else mask[-1:]
        out = attention(q, k, v, mask, causal and mask is None).transpose(1, 2).reshape(B, T, -1)
        if rows is not None:
            out = out.flatten(0, 1).index_select(0, rows)  # (M, dim)
        return self.proj(out)  # (B, T, dim)


class Block(CompilableLayer):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x)).

    `checkpointing = True` (set by the trainer's `train.activation_checkpointing`) keeps only the
    block's input for backward and recomputes its inside then: activation memory per block drops
    from every intermediate to one (B, T, dim) tensor, for one extra forward in backward.
    `train.compile` runs its full-sequence forward compiled (`dialect.nn.compile`)."""

    checkpointing = False

    def __init__(self, dim: int, heads: int, mlp_hidden: int | None = None, qk_norm: bool = False) -> None:
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, heads, qk_norm)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, **attn_kwargs) -> torch.Tensor:
        recompute = self.checkpointing and self.training and torch.is_grad_enabled()
        forward = self.forward_fn(attn_kwargs.get("cache"))
        if recompute and attn_kwargs.get("cache") is None:
            return checkpoint(forward, x, use_reentrant=False, **attn_kwargs)
        return forward(x, **attn_kwargs)

    def _forward(
        self, x: torch.Tensor, last_only: bool = False, rows: torch.Tensor | None = None, **attn_kwargs
    ) -> torch.Tensor:
        h = self.attn(self.norm1(x), last_only=last_only, rows=rows, **attn_kwargs)
        if last_only:
            x = x[:, -1:]
        elif rows is not None:
            x = x.flatten(0, 1).index_select(0, rows)
        x = x + h
        return x + self.mlp(self.norm2(x))


def enable_checkpointing(model: nn.Module) -> int:
    """Activation checkpointing for every trainable transformer layer in `model`: our `Block`s,
    and the layers of any `transformers` model inside (its own `gradient_checkpointing_enable`).
    Frozen parts run without grad and store nothing anyway. Returns the number of layers."""
    n, inside_hf = 0, set()
    for m in model.modules():
        if id(m) in inside_hf or not any(p.requires_grad for p in m.parameters()):
            continue
        if isinstance(m, Block):
            m.checkpointing = True
            n += 1
        elif hasattr(m, "gradient_checkpointing_enable"):  # the outermost transformers model
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            inside_hf |= {id(sub) for sub in m.modules()}
            n += sum(1 for sub in m.modules() if type(sub).__name__.endswith("DecoderLayer"))
    return n


def init_transformer_weights(module: nn.Module, depth: int, std: float = 0.02) -> None:
    """GPT-2 / ViT initialisation: every Linear ~ N(0, std) (truncated at 2 std), biases zero, and
    the two projections that write into the residual stream scaled by 1/sqrt(2 * depth) so the
    stream's variance does not grow with depth.

    Why it matters here: PyTorch's default Linear init (uniform, std ~ 1/sqrt(3 fan_in), 0.05 at
    width 128) made a 4-block ViT learn ShapeWorld shapes at chance for 100 steps; with this init
    the same model reaches 86% (measured, single-object shape classification, batch 64).
    """
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            residual = name.endswith("attn.proj") or name.endswith("mlp.w2")
            s = std / (2 * depth) ** 0.5 if residual else std
            nn.init.trunc_normal_(m.weight, std=s, a=-2 * s, b=2 * s)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Stack(nn.Module):
    """`depth` blocks then a final RMSNorm: (B, T, dim) -> (B, T, dim)."""

    def __init__(
        self, dim: int, depth: int, heads: int, mlp_hidden: int | None = None, qk_norm: bool = False
    ):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_hidden, qk_norm) for _ in range(depth))
        self.norm = RMSNorm(dim)
        init_transformer_weights(self, depth)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        causal: bool = False,
        mask: torch.Tensor | None = None,
        caches: list[KVCache] | list[StaticKVCache] | None = None,
        last_only: bool = False,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """-> (B, T, dim). The top block's work can be cut to the outputs that are used:
        - `last_only` (causal only) -> (B, 1, dim), the last position's output: the top block runs
          attention, projection and MLP on the last query alone (its keys and values still cover
          every position, for the caches); a decoding prefill skips most of one block's work,
          about a fifth of a 4-block LM's FLOPs;
        - `rows` (M,) long, flat indices into (B, T) -> (M, dim), those positions' outputs: the top
          block's projection and MLP run on them alone (a training step's loss positions)."""
        top = len(self.blocks) - 1 if last_only or rows is not None else -1
        for i, block in enumerate(self.blocks):
            cache = caches[i] if caches is not None else None
            kw = {"last_only": last_only, "rows": rows} if i == top else {}
            x = block(x, rope=rope, causal=causal, mask=mask, cache=cache, **kw)
        return self.norm(x)

    def layers(self, x: torch.Tensor, which: Sequence[int], **attn_kwargs) -> list[torch.Tensor]:
        """Outputs of several layers in one pass, in the order asked: -1 is the normed top, i or -k
        the output of block i (before the final norm), as encoders that read an inner layer need
        (e.g. the penultimate). Stops after the last block any of them needs."""
        depth = len(self.blocks)
        want = [None if k == -1 else k % depth for k in which]
        last = depth - 1 if None in want else max(want)
        outs: dict[int | None, torch.Tensor] = {}
        for i, block in enumerate(self.blocks[: last + 1]):
            x = block(x, **attn_kwargs)
            if i in want:
                outs[i] = x
        if None in want:
            outs[None] = self.norm(x)
        return [outs[k] for k in want]
