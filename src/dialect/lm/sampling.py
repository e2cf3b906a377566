"""Turning next-token logits into tokens: temperature, top-k, nucleus (top-p), classifier-free guidance.

Pure functions on (B, V) logits, so they are tested without a network. The order is the usual one:
guidance mixes the conditional and unconditional logits, a vocabulary mask removes tokens that may
not be sampled, then `sample` divides by the temperature, keeps the top-k, keeps the nucleus and
draws from the softmax (or takes the argmax at temperature 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _check(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


@dataclass
class SamplingConfig:
    """How `DecoderLM.generate` picks each token. The defaults sample the model's plain distribution.

    The Tar paper samples its de-tokenizers with temperature 1.0 and top-p 0.95 (and guidance); the
    defaults here stay neutral, so a caller sets those values explicitly.
    """

    temperature: float = 1.0  # logits / temperature; 0 = greedy argmax
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set of tokens whose probability reaches top_p; 1 = off
    cfg_scale: float = 1.0  # classifier-free guidance scale; 1 = off (no unconditional pass)

    def __post_init__(self) -> None:
        _check(self.temperature, self.top_k, self.top_p)
        if not math.isfinite(self.cfg_scale):
            raise ValueError(f"cfg_scale must be a finite number, got {self.cfg_scale}")


def apply_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: uncond + scale * (cond - uncond); scale 1 gives `cond`."""
    return uncond + scale * (cond - uncond)


def vocab_mask(allowed: slice | torch.Tensor, vocab_size: int, device=None) -> torch.Tensor:
    """(V,) bool, True where a token may be sampled: a slice of ids (e.g. the image-token range) or
    a LongTensor of ids."""
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    if isinstance(allowed, slice):
        if allowed.step not in (None, 1):
            raise ValueError(f"allowed slice must have step 1, got {allowed}")
        lo, hi = allowed.start or 0, vocab_size if allowed.stop is None else allowed.stop
        if not 0 <= lo < hi <= vocab_size:
            raise ValueError(f"allowed slice {allowed} is empty or outside the vocabulary [0, {vocab_size})")
        mask[lo:hi] = True
        return mask
    ids = torch.as_tensor(allowed, device=device)
    if ids.dtype in (torch.bool, torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"allowed must be a slice or a tensor of token ids, got dtype {ids.dtype}")
    if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise ValueError(f"allowed ids must be non-empty and within [0, {vocab_size})")
    mask[ids.flatten()] = True
    return mask


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """(B, V) -> (B, V) with the dropped tokens set to -inf: top-k first, then the nucleus.

    top-k keeps exactly k tokens (ties broken by `topk`). top-p keeps the smallest set of most
    likely tokens whose total probability is >= top_p. The most likely token always survives.
    """
    _check(1.0, top_k, top_p)
    if 0 < top_k < logits.shape[-1]:
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(top_k).indices, True)
        logits = logits.masked_fill(~keep, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass; the first
        # token has 0 mass above it, so it always stays
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample(
    logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids. Temperature 0 is greedy argmax (top-k/top-p are then moot).

    `generator` (on the logits' device) makes draws reproducible."""
    _check(cfg.temperature, cfg.top_k, cfg.top_p)
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / cfg.temperature, cfg.top_k, cfg.top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
