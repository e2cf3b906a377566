"""Where each image token sits on its TA-Tok grid: a learned 2-D position for Tar's image tokens.

Tar's LM sees an image as a flat run of g*g codes (row-major, g = the scale's grid side) with
1-D positions, so "the token left of this one" is one step back but "the token above" is g steps
back, and the column of a token is its offset modulo g, which attention does not compute easily.
With `TarConfig.image_positions = "2d"` every image token's embedding also gets one learned vector
per (scale, grid cell), the way vision-language models give image tokens 2-D positions (Qwen2-VL's
M-RoPE does it inside attention; an added embedding does it at the input and works on any
backbone, since the backbones all take a `token_bias`). The table starts at zero, so a new model
starts exactly like a "1d" one.

A token is an image token of scale k at cell j when it is the j-th token after `<im_start> <S_k>`
(j < g_k^2): by position, not by id, which is what constrained decoding guarantees and what lets
`bias` be computed for tokens not yet sampled.
"""

from __future__ import annotations

import torch
from torch import nn

from dialect.unified.vocab import IM_START, TarVocab

IMAGE_POSITIONS = ("1d", "2d")


class ImageGrid(nn.Module):
    """One learned (dim,) vector per grid cell of every TA-Tok scale; `counts[k]` = tokens of scale k."""

    def __init__(self, counts: list[int], dim: int, vocab: TarVocab) -> None:
        super().__init__()
        self.counts = list(counts)
        self.offsets = [sum(self.counts[:k]) for k in range(len(self.counts))]
        self.im_start = vocab.special(IM_START)
        self.scale_ids = [vocab.scale_id(k) for k in range(len(self.counts))]
        self.cell = nn.Embedding(sum(self.counts), dim)
        nn.init.zeros_(self.cell.weight)

    def cells(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T) long: the row of `cell` for each image token, -1 elsewhere."""
        out = torch.full_like(ids, -1)
        starts = (ids[:, :-1] == self.im_start).nonzero().tolist()
        for b, t in starts:
            marker = int(ids[b, t + 1])
            if marker not in self.scale_ids:
                continue
            k = self.scale_ids.index(marker)
            lo = t + 2
            hi = min(lo + self.counts[k], ids.shape[1])
            out[b, lo:hi] = torch.arange(self.offsets[k], self.offsets[k] + hi - lo)
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> token bias (B, T, dim): the cell's vector at image tokens, zeros elsewhere."""
        cells = self.cells(ids)
        inside = (cells >= 0).unsqueeze(-1)
        return self.cell(cells.clamp_min(0)) * inside
