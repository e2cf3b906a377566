"""Decoding shared by every causal LM in the project: the loss of next-token prediction and
sampling with a KV cache (prefill once, then one token per step).

:class:`Decoding` is a mixin. A model that inherits it provides the contract of
:class:`~dialect.lm.transformer.DecoderLM`:

- `config` with `vocab_size`, `dim` (input width) and `max_len` (longest sequence);
- `forward(ids (B, T), prefix (B, P, dim) | None, caches=None, start=0, token_bias=None,
  last_only=False)` -> logits (B, N, V), N = T + 1 with a prefix, else T (row t of the prefix-free
  case predicts ids[t + 1]), N = 1 (the next token's) with `last_only`; with `caches` the inputs
  are appended at position `start` to what they hold;
- `new_caches(rows, capacity, device)` -> an empty cache for `forward` (capacity: the most
  positions decoding will write; a growing cache may ignore it).

Our :class:`~dialect.lm.transformer.DecoderLM` and the Hugging Face adapter
:class:`~dialect.lm.hf.HFCausalLM` both inherit it, so constrained sampling, stop tokens and
classifier-free guidance are written once.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from dialect.lm.sampling import SamplingConfig, apply_cfg, sample, vocab_mask


class Decoding:
    """`next_token_loss` and `generate` for a causal LM with the contract of the module docstring."""

    def next_token_loss(
        self, ids: torch.Tensor, prefix: torch.Tensor | None = None, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy (fp32) of predicting each id from everything before it.

        With a prefix every ids[t] is a target (ids[0] is predicted from the prefix); without one,
        ids[1:]. `loss_mask` (B, T), aligned with ids, weights each target (0 = ignore)."""
        check_ids(ids, self.config.vocab_size)
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
        uncond_ids: torch.Tensor | None = None,
    ) -> torch.LongTensor:
        """Sample `num_tokens` ids (B, num_tokens) after the prefix (B, P, ·) and optional given
        first ids (B, T0), which are not repeated in the output.

        Guidance: with `sampling.cfg_scale != 1`, an unconditional twin of the inputs is required:
        `uncond_prefix` (same shape as prefix, e.g. the embeddings of a null condition) and/or
        `uncond_ids` (same shape as ids, e.g. the prompt with its words nulled; default: ids
        again). Both are decoded as one batch of 2B and each step samples from
        uncond + scale * (cond - uncond). At scale 1 they are ignored.
        `allowed` (a slice or LongTensor of ids) restricts which tokens can be sampled.
        `use_cache=False` recomputes the whole sequence at every step (reference and benchmark).
        `token_bias` (B, T0 + num_tokens - 1, dim): added to the embedding of every id fed back in,
        the given ids first, then generated tokens 0 .. num_tokens - 2 (see `forward`); with
        guidance the unconditional rows get `uncond_token_bias` (default: the same bias).
        `stop_id`: decoding ends early once every row has produced it (a row keeps sampling after
        its own stop; callers cut each row at its first stop), so the output may be shorter.
        Logits are cast to fp32 before guidance and sampling, so this is safe under autocast."""
        guided = sampling.cfg_scale != 1.0
        if guided and uncond_prefix is None and uncond_ids is None:
            raise ValueError(f"cfg_scale {sampling.cfg_scale} needs an uncond_prefix or uncond_ids")
        x_prefix, x_ids = self._decode_inputs(
            prefix, ids, num_tokens, uncond_prefix if guided else None, uncond_ids if guided else None
        )
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
        # prefill: one forward over the inputs, logits of the next token only
        logits = self(x_ids, x_prefix, caches=caches, token_bias=bias_at(0, n_given), last_only=True)[:, -1]
        out = []
        stopped = torch.zeros(rows // (2 if guided else 1), dtype=torch.bool, device=x_ids.device)
        with self.decoding_steps(caches):
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
                    bias_t = bias_at(fed, fed + 1)
                    logits = self(tok, caches=caches, start=n_in + step, token_bias=bias_t)[:, -1]
                else:
                    x_ids = torch.cat([x_ids, tok], dim=1)
                    logits = self(x_ids, x_prefix, token_bias=bias_at(0, fed + 1), last_only=True)[:, -1]
        return torch.stack(out, dim=1)

    def decoding_steps(self, caches: list | None) -> contextlib.AbstractContextManager:
        """Scope of one decoding loop over `caches` (`generate` runs its steps inside it). Nothing
        here; a model may speed up the steps it scopes (`DecoderLM.decoding_steps`)."""
        return contextlib.nullcontext()

    def _decode_inputs(
        self,
        prefix: torch.Tensor | None,
        ids: torch.Tensor | None,
        num_tokens: int,
        uncond_prefix: torch.Tensor | None,
        uncond_ids: torch.Tensor | None = None,
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
        check_ids(ids, self.config.vocab_size)
        if ids.shape[0] != batch:
            raise ValueError(f"ids batch {ids.shape[0]} != prefix batch {batch}")
        length = ids.shape[1] + (prefix.shape[1] if prefix is not None else 0) + num_tokens - 1
        if length > self.config.max_len:
            raise ValueError(f"inputs + {num_tokens} tokens need {length} positions > max_len")
        if uncond_prefix is None and uncond_ids is None:
            return prefix, ids
        if uncond_prefix is not None and (prefix is None or uncond_prefix.shape != prefix.shape):
            got = None if prefix is None else tuple(prefix.shape)
            raise ValueError(f"uncond_prefix {tuple(uncond_prefix.shape)} must match the prefix {got}")
        if uncond_ids is not None:
            if uncond_ids.shape != ids.shape:
                raise ValueError(
                    f"uncond_ids {tuple(uncond_ids.shape)} must match the ids {tuple(ids.shape)}"
                )
            check_ids(uncond_ids, self.config.vocab_size)
        if prefix is not None:  # a twin given by uncond_ids alone keeps the conditional prefix
            prefix = torch.cat([prefix, prefix if uncond_prefix is None else uncond_prefix.to(prefix)])
        return prefix, torch.cat([ids, ids if uncond_ids is None else uncond_ids.to(ids)])  # (2B, ...)


def check_ids(ids: torch.Tensor, vocab_size: int) -> None:
    if ids.dtype != torch.long:
        raise ValueError(f"ids must be a LongTensor, got {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")


def select_rows(x: torch.Tensor, select: torch.Tensor | None) -> torch.Tensor:
    """x (B, N, ...) -> x[select] (M, ...) for a bool select (B, N); x itself when select is None."""
    if select is None:
        return x
    check_select(select, x.shape[:2])
    return x[select]


def check_select(select: torch.Tensor, shape: tuple[int, ...]) -> None:
    """`select` must be a bool (B, N) matching the logit rows' shape."""
    if select.dtype != torch.bool or tuple(select.shape) != tuple(shape):
        raise ValueError(
            f"select must be a bool tensor of shape {tuple(shape)}, got {select.dtype} {tuple(select.shape)}"
        )
