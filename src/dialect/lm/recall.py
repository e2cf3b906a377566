"""Associative recall: the smallest task that needs an LM's in-context lookup.

A sequence holds `pairs` (key, value) tokens, a separator, then one of the keys; the answer is its
value. Keys are `keys` distinct ids out of [0, keys), values ids in [keys, 2 * keys), the separator
id 2 * keys, so a model needs a vocabulary of 2 * keys + 1. Used by `experiments/recall_probe.py`
(can the tiny Tar's LM learn the lookup from scratch?) and by the test of `LMConfig.token_shift`.
"""

from __future__ import annotations

import torch


def recall_batch(n: int, pairs: int, keys: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences (n, 2 * pairs + 2) long, [k1 v1 ... kP vP SEP k_q], and their answers v_q (n,)."""
    k = torch.stack([torch.randperm(keys, generator=gen)[:pairs] for _ in range(n)])
    v = torch.randint(keys, 2 * keys, (n, pairs), generator=gen)
    q, rows = torch.randint(0, pairs, (n,), generator=gen), torch.arange(n)
    seq = torch.stack([k, v], -1).reshape(n, 2 * pairs)
    return torch.cat([seq, torch.full((n, 1), 2 * keys), k[rows, q][:, None]], 1), v[rows, q]
