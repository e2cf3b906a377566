"""The condition every de-tokenizer reads: TA-Tok ids -> decoded features -> de-tokenizer width.

Both de-tokenizers of Tar (AR-DTok and Dif-DTok, shared/papers/tar.md) are conditioned on the
TA-Tok features *decoded from the tokens*, not on the raw ids. :class:`TATokCondition` holds a
frozen TA-Tok (always in eval mode, no gradients; its weights are saved inside the de-tokenizer's
checkpoint, so that checkpoint is self-contained) and turns

    images (B, 3, H, W) in [-1, 1]  -- training: draw a scale, tokenize, decode (no grad)
    stored ids of every scale       -- training on a pretokenized folder: draw a scale, decode
    ids (B, n_scale) at scale k     -- inference
        -> TA-Tok features on the FULL teacher grid (B, h * w, C), whatever the scale
        -> LayerNorm + trainable Linear to the de-tokenizer width, + a learned embedding of the
           scale (coarse scales give blurrier features; the model is told which it reads)
        -> condition tokens (B, h * w, dim), row-major over the h x w grid.

Because decoded features always live on the full grid, one de-tokenizer serves every scale with
the same sequence length.

Classifier-free guidance: in training each sample's condition is replaced, with probability
`drop` (the paper: 10%), by a learned null condition of the same shape (h * w, dim);
:meth:`TATokCondition.null` gives that unconditional condition for a batch at inference.

The training scale is drawn per batch from `scale_weights` (empty: the TA-Tok's own weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dialect.core.errors import DialectError
from dialect.data.tokens import ids_key
from dialect.tokenizers.tatok import TATok, TATokConfig


def resolve_generator(
    generator: torch.Generator | None, seed: int | None, device: torch.device
) -> torch.Generator | None:
    """The de-tokenizers' sampling randomness: `generator` if given, else a fresh one seeded with
    `seed` on `device`, else None (the global RNG)."""
    if generator is None and seed is not None:
        generator = torch.Generator(device).manual_seed(seed)
    return generator


class TATokCondition(nn.Module):
    """Frozen TA-Tok + trainable projection + learned null condition; see the module docstring."""

    def __init__(
        self,
        tatok: TATokConfig,
        dim: int,
        drop: float = 0.1,
        scale_weights: Sequence[float] = (),
    ) -> None:
        super().__init__()
        if not 0.0 <= drop < 1.0:
            raise DialectError(f"condition dropout must be in [0, 1), got {drop}")
        weights = list(scale_weights) or list(tatok.scale_weights)
        if len(weights) != tatok.num_scales or min(weights) < 0 or sum(weights) <= 0:
            raise DialectError(
                f"scale_weights needs {tatok.num_scales} non-negative weights (not all zero), got {weights}"
            )
        self.drop = drop
        self.register_buffer("scale_weights", torch.tensor(weights, dtype=torch.float), persistent=False)
        self.tatok = TATok(tatok).eval().requires_grad_(False)
        self.feature_dim = self.tatok.teacher.feature_dim  # C
        self.grid = self.tatok.grid  # side h = w of the full teacher grid
        self.norm = nn.LayerNorm(self.feature_dim, elementwise_affine=False)
        self.proj = nn.Linear(self.feature_dim, dim)
        self.scale_embed = nn.Embedding(tatok.num_scales, dim)
        self.null_embed = nn.Parameter(torch.zeros(self.num_tokens, dim))
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        nn.init.normal_(self.scale_embed.weight, std=0.02)
        nn.init.normal_(self.null_embed, std=0.02)

    @property
    def num_tokens(self) -> int:
        """Condition tokens per image: the full teacher grid, h * w."""
        return self.grid * self.grid

    @property
    def num_scales(self) -> int:
        return self.tatok.config.num_scales

    def load_tatok(self, tatok: TATok) -> None:
        """Copy a trained TA-Tok's weights into the frozen one (configs must match)."""
        self.tatok.load_state_dict(tatok.state_dict())

    def train(self, mode: bool = True) -> TATokCondition:
        super().train(mode)
        self.tatok.eval()  # frozen: always in inference mode (deterministic argmax codes)
        return self

    # ------------------------------------------------------------------ features
    def draw_scale(self, generator: torch.Generator | None = None) -> int:
        """One training scale index, drawn with `scale_weights`."""
        return int(torch.multinomial(self.scale_weights.cpu(), 1, generator=generator))

    @torch.no_grad()
    def encode_ids(self, images: torch.Tensor, scale: int) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> TA-Tok ids (B, n_scale)."""
        return self.tatok.encode_ids(images, scale)

    @torch.no_grad()
    def features(self, ids: torch.Tensor, scale: int) -> torch.Tensor:
        """ids (B, n_scale), any tensor-like, -> decoded TA-Tok features (B, h * w, C), fp32, no
        grad, on this module's device; a wrong shape or range -> DialectError (TA-Tok's checks)."""
        ids = torch.as_tensor(ids).to(self.proj.weight.device)
        return self.tatok.decode_ids(ids, scale).flatten(1, 2).float()

    def project(self, features: torch.Tensor, scale: int) -> torch.Tensor:
        """Decoded features (B, h * w, C) -> condition tokens (B, h * w, dim)."""
        if features.dim() != 3 or features.shape[1:] != (self.num_tokens, self.feature_dim):
            raise DialectError(
                f"condition features must be (batch, {self.num_tokens}, {self.feature_dim}), "
                f"got {tuple(features.shape)}"
            )
        x = self.proj(self.norm(features.to(self.proj.weight.dtype)))
        return x + self.scale_embed.weight[scale]

    def from_ids(self, ids: torch.Tensor, scale: int) -> torch.Tensor:
        """Inference: TA-Tok ids (B, n_scale) at `scale` -> condition tokens (B, h * w, dim)."""
        return self.project(self.features(ids, scale), scale)

    def null(self, batch: int) -> torch.Tensor:
        """The unconditional condition for `batch` samples: (batch, h * w, dim)."""
        return self.null_embed.unsqueeze(0).expand(batch, -1, -1)

    # ------------------------------------------------------------------ training
    def dropout(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Replace each sample's condition by the null one with probability `drop`.

        Written as a `where`, so the null embedding is in the graph of every batch (a zero
        gradient when nothing was dropped), as DDP requires of every trainable parameter.
        """
        keep = torch.rand(cond.shape[0], generator=generator, device=cond.device) >= self.drop
        return torch.where(keep[:, None, None], cond, self.null(cond.shape[0]).to(cond.dtype))

    def forward(self, images: torch.Tensor, scale: int) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> condition tokens (B, h * w, dim) at `scale`."""
        return self.project(self.features(self.encode_ids(images, scale), scale), scale)

    def training_condition(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """One training batch: draw a scale, tokenize, decode, project, apply condition dropout.
        -> (condition tokens (B, h * w, dim), the scale drawn)."""
        scale = self.draw_scale()
        return self.dropout(self(images, scale), generator), scale

    def stored_condition(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """`training_condition` for a pretokenized batch: the ids of the drawn scale are read from
        `batch[ids_key(scale)]` (`dialect.data.tokens`) instead of tokenizing images."""
        scale = self.draw_scale()
        return self.dropout(self.from_ids(batch[ids_key(scale)], scale), generator), scale
