"""A frozen local text encoder (default: the shipped MiniLM), used as the text side of the
contrastive teacher. Sentence embedding = attention-masked mean of the last hidden states, as
all-MiniLM-L6-v2 was trained; L2-normalised. Results are cached per string, because ShapeWorld
captions repeat and the model never changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from dialect.core.local_models import resolve_model_path


class FrozenTextEncoder(nn.Module):
    """texts (list of N str) -> (N, dim) unit vectors; no gradients, never saved in checkpoints."""

    def __init__(self, path: str | Path | None = None, max_length: int = 64, cache_size: int = 200_000):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        folder = resolve_model_path(path)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        # Kept out of the module tree (a plain attribute): its weights are not ours to save.
        self.__dict__["model"] = AutoModel.from_pretrained(folder).eval().requires_grad_(False)
        self.dim = self.model.config.hidden_size
        self.max_length = max_length
        self.cache_size = cache_size
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        hidden = self.model(**enc).last_hidden_state  # (N, T, dim)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return nn.functional.normalize(pooled, dim=-1)

    @torch.no_grad()
    def forward(self, texts: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            with torch.autocast("cpu", enabled=False):
                for t, e in zip(missing, self._embed(missing), strict=True):
                    self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts])
