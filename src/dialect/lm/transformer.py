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

Decoding prefills the prefix (and any given ids) in one forward into preallocated per-layer
:class:`~dialect.nn.blocks.KVCache`s, then feeds one token per step; classifier-free guidance runs
the conditional and unconditional rows as one batch of 2B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.pretrained import Pretrained
from dialect.lm.sampling import SamplingConfig, apply_cfg, sample, vocab_mask
from dialect.nn.blocks import KVCache, Stack, init_transformer_weights
from dialect.nn.linear import Linear
from dialect.nn.rope import rope_1d


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


class DecoderLM(nn.Module, Pretrained):
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
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        if self.pos_emb is not None:
            nn.init.normal_(self.pos_emb.weight, std=0.02)
        init_transformer_weights(self.head, c.depth)
        if self.prefix_proj is not None:
            init_transformer_weights(self.prefix_proj, c.depth)
        if c.tie_embeddings:
            self.head.weight = self.tok_emb.weight

    @property
    def head_dim(self) -> int:
        return self.config.dim // self.config.heads

    def new_caches(
        self, batch: int, capacity: int, device=None, dtype: torch.dtype | None = None
    ) -> list[KVCache]:
        """One empty KVCache per block, (batch, heads, capacity, head_dim) each.

        device defaults to the model's; dtype to the autocast dtype when autocast is on for that
        device (keys/values are then computed in it), else the model's parameter dtype."""
        param = self.tok_emb.weight
        device = torch.device(device or param.device)
        if dtype is None:
            autocast_on = torch.is_autocast_enabled(device.type)
            dtype = torch.get_autocast_dtype(device.type) if autocast_on else param.dtype
        c = self.config
        return [KVCache.empty(batch, c.heads, capacity, self.head_dim, device, dtype) for _ in range(c.depth)]

    def forward(
        self,
        ids: torch.Tensor | None,
        prefix: torch.Tensor | None = None,
        caches: list[KVCache] | None = None,
        start: int = 0,
        token_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) long (None = no ids), prefix (B, P, prefix_dim or dim) -> logits (B, N, V).

        N = T + 1 with a prefix, else T (see the module docstring). `start` is the position of the
        first input element (prefix or ids) in the sequence; with `caches` it must equal the number
        of positions they already hold, and the inputs are appended to them. `token_bias`
        (B, T, dim), optional, is added to the embeddings of the ids (a per-position condition,
        e.g. the AR de-tokenizer's feature under each image token)."""
        x = self._embed(ids, prefix, token_bias)  # (B, P + T, dim)
        n = x.shape[1]
        if n == 0:
            raise ValueError("DecoderLM.forward needs a prefix or at least one id")
        if start + n > self.config.max_len:
            raise ValueError(f"sequence of {start + n} positions exceeds max_len {self.config.max_len}")
        if caches is not None and (len(caches) != self.config.depth or caches[0].length != start):
            raise ValueError(
                f"need {self.config.depth} caches holding exactly start={start} positions, "
                f"got {len(caches)} holding {caches[0].length if caches else 0}"
            )
        positions = torch.arange(start, start + n, device=x.device)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        else:
            rope = rope_1d(positions, self.head_dim)
        x = self.stack(x, rope=rope, causal=True, caches=caches)
        # project only the positions whose next element is a token: from the last prefix element on
        first = prefix.shape[1] - 1 if prefix is not None else 0
        return self.head(x[:, first:])  # (B, N, V)

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

    def next_token_loss(
        self, ids: torch.Tensor, prefix: torch.Tensor | None = None, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy (fp32) of predicting each id from everything before it.

        With a prefix every ids[t] is a target (ids[0] is predicted from the prefix); without one,
        ids[1:]. `loss_mask` (B, T), aligned with ids, weights each target (0 = ignore)."""
        _check_ids(ids, self.config.vocab_size)
        if prefix is None and ids.shape[1] < 2:
            raise ValueError("without a prefix, next_token_loss needs at least 2 ids")
        logits = self(ids[:, :-1], prefix)  # (B, n, V): predictions of the last n ids
        n = logits.shape[1]
        targets = ids[:, ids.shape[1] - n :]
        ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
        if loss_mask is None:
            return ce.mean()
        weight = loss_mask[:, ids.shape[1] - n :].flatten().float()
        return (ce * weight).sum() / weight.sum().clamp_min(1.0)

    @torch.no_grad()
    def generate(
        self,
        prefix: torch.Tensor | None,
        num_tokens: int,
        sampling: SamplingConfig,
        uncond_prefix: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        ids: torch.Tensor | None = None,
        use_cache: bool = True,
        allowed: slice | torch.Tensor | None = None,
        token_bias: torch.Tensor | None = None,
        uncond_token_bias: torch.Tensor | None = None,
        stop_id: int | None = None,
    ) -> torch.LongTensor:
        """Sample `num_tokens` ids (B, num_tokens) after the prefix (B, P, ·) and optional given
        first ids (B, T0), which are not repeated in the output.

        Guidance: with `sampling.cfg_scale != 1`, `uncond_prefix` (same shape as prefix, e.g. the
        embeddings of a null condition) is required; both are decoded as one batch of 2B and each
        step samples from uncond + scale * (cond - uncond). At scale 1 it is ignored.
        `allowed` (a slice or LongTensor of ids) restricts which tokens can be sampled.
        `use_cache=False` recomputes the whole sequence at every step (reference and benchmark).
        `token_bias` (B, T0 + num_tokens - 1, dim): added to the embedding of every id fed back in,
        the given ids first, then generated tokens 0 .. num_tokens - 2 (see `forward`); with
        guidance the unconditional rows get `uncond_token_bias` (default: the same bias).
        `stop_id`: decoding ends early once every row has produced it (a row keeps sampling after
        its own stop; callers cut each row at its first stop), so the output may be shorter.
        Logits are cast to fp32 before guidance and sampling, so this is safe under autocast."""
        guided = sampling.cfg_scale != 1.0
        if guided and uncond_prefix is None:
            raise ValueError(f"cfg_scale {sampling.cfg_scale} needs an uncond_prefix")
        x_prefix, x_ids = self._decode_inputs(prefix, ids, num_tokens, uncond_prefix if guided else None)
        bias = token_bias
        if bias is not None:
            expected = (
                x_ids.shape[0] // (2 if guided else 1),
                x_ids.shape[1] + num_tokens - 1,
                self.config.dim,
            )
            if tuple(bias.shape) != expected:
                raise ValueError(f"token_bias must be {expected}, got {tuple(bias.shape)}")
            if guided:
                bias = torch.cat([bias, bias if uncond_token_bias is None else uncond_token_bias.to(bias)])
        n_given = x_ids.shape[1]

        def bias_at(lo: int, hi: int) -> torch.Tensor | None:  # bias of fed ids [lo, hi)
            return None if bias is None else bias[:, lo:hi]

        mask = None if allowed is None else vocab_mask(allowed, self.config.vocab_size, x_ids.device)

        def pick(logits: torch.Tensor) -> torch.Tensor:  # (rows, V) -> (B,)
            logits = logits.float()
            if guided:
                logits = apply_cfg(*logits.chunk(2), sampling.cfg_scale)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            return sample(logits, sampling, generator)

        rows, n_in = x_ids.shape[0], x_ids.shape[1] + (x_prefix.shape[1] if x_prefix is not None else 0)
        caches = self.new_caches(rows, n_in + num_tokens - 1, x_ids.device) if use_cache else None
        # prefill: one forward over the inputs
        logits = self(x_ids, x_prefix, caches=caches, token_bias=bias_at(0, n_given))[:, -1]
        out = []
        stopped = torch.zeros(rows // (2 if guided else 1), dtype=torch.bool, device=x_ids.device)
        for step in range(num_tokens):
            tok = pick(logits)
            out.append(tok)
            if stop_id is not None:
                stopped |= tok == stop_id
            if step == num_tokens - 1 or bool(stopped.all()):
                break
            tok = tok.repeat(2)[:, None] if guided else tok[:, None]  # same token in both halves
            fed = n_given + step  # index of this token among the fed ids
            if use_cache:
                logits = self(tok, caches=caches, start=n_in + step, token_bias=bias_at(fed, fed + 1))[:, -1]
            else:
                x_ids = torch.cat([x_ids, tok], dim=1)
                logits = self(x_ids, x_prefix, token_bias=bias_at(0, fed + 1))[:, -1]
        return torch.stack(out, dim=1)

    def _decode_inputs(
        self,
        prefix: torch.Tensor | None,
        ids: torch.Tensor | None,
        num_tokens: int,
        uncond_prefix: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Validate generate's inputs; -> (prefix, ids) with uncond rows stacked after cond rows."""
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        if prefix is None and (ids is None or ids.shape[1] == 0):
            raise ValueError("generate needs a prefix or at least one given id to start from")
        ref = prefix if prefix is not None else ids
        batch, device = ref.shape[0], ref.device
        if ids is None:
            ids = torch.empty(batch, 0, dtype=torch.long, device=device)
        _check_ids(ids, self.config.vocab_size)
        if ids.shape[0] != batch:
            raise ValueError(f"ids batch {ids.shape[0]} != prefix batch {batch}")
        length = ids.shape[1] + (prefix.shape[1] if prefix is not None else 0) + num_tokens - 1
        if length > self.config.max_len:
            raise ValueError(f"inputs + {num_tokens} tokens need {length} positions > max_len")
        if uncond_prefix is None:
            return prefix, ids
        if prefix is None or uncond_prefix.shape != prefix.shape:
            got = None if prefix is None else tuple(prefix.shape)
            raise ValueError(f"uncond_prefix {tuple(uncond_prefix.shape)} must match the prefix {got}")
        return torch.cat([prefix, uncond_prefix.to(prefix)]), ids.repeat(2, 1)  # (2B, ...)


def _check_ids(ids: torch.Tensor, vocab_size: int) -> None:
    if ids.dtype != torch.long:
        raise ValueError(f"ids must be a LongTensor, got {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
