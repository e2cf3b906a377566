"""The contrastive teacher: a ViT trained against a frozen text encoder with SigLIP's pairwise
sigmoid loss (the text-aligned vision encoder that TA-Tok quantizes, at our scale).

Loss (SigLIP): for every image i and text j in the batch, logit_ij = t * <u_i, v_j> + b with unit
vectors u (image) and v (text), t = exp(t'), init t' = log 10 and b = -10 (the SigLIP paper's
choices); label +1 if the pair matches and -1 otherwise; loss = -sum_ij log sigmoid(label * logit)
/ B. Two samples that describe the same thing are matches too, otherwise they would be pushed
apart: samples whose ShapeWorld scenes hold the same objects (shape, colour, size; taken from
`meta["scene"]` when the batch carries it), or else samples with identical caption text.

Grounded patch loss (optional, `dense_weight > 0`; our stand-in for the dense/local objectives
SigLIP 2 adds to SigLIP, e.g. its LocCa grounded-captioning decoder, which is what makes SigLIP 2's
patch features good TA-Tok teachers): the patch features of layer `dense_layer` (the layer TA-Tok
reads) are projected into the frozen text model's space and classified, by cosine similarity /
`dense_tau`, among the text embeddings of every ShapeWorld object phrase ("large red circle", ...,
"background"); the target is the phrase of the object each patch shows (world.grounding). Object
patches weigh 1, background patches `dense_background`. Needs `meta["scene"]` in the batch.
Measured reason (experiments/results/tatok_object_cells.md): with the global loss alone, a linear
probe read an object's shape from its teacher patch 48-54% of the time (chance 20%), which capped
every token and image downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.errors import DialectError
from dialect.core.pretrained import Pretrained
from dialect.encoders.text import FrozenTextEncoder
from dialect.encoders.vit import ViT, ViTConfig


@dataclass
class ContrastiveConfig:
    vision: ViTConfig = field(default_factory=ViTConfig)
    text_model: str = ""  # local HF folder of the frozen text encoder; "" = the shipped MiniLM
    text_dim: int = 384  # hidden size of that text model
    embed_dim: int = 256  # shared image-text space
    init_logit_scale: float = 2.302585  # log(10)
    init_logit_bias: float = -10.0
    dense_weight: float = 0.0  # weight of the grounded patch loss; 0 = the SigLIP loss alone
    dense_layer: int = -2  # ViT layer whose patches it trains (TA-Tok's teacher_layer)
    dense_tau: float = 0.05  # temperature of the patch -> phrase classification
    dense_background: float = 0.1  # weight of background patches relative to object patches


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                match: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """img, txt (B, E) unit vectors; match (B, B) bool -> scalar pairwise sigmoid loss."""
    logits = scale.exp() * img @ txt.T + bias
    labels = match.float() * 2 - 1
    return -F.logsigmoid(labels * logits).sum() / img.shape[0]


def _match_key(text: str, meta: dict) -> object:
    """What decides that two samples match: the scene's objects when known, else the caption."""
    scene = meta.get("scene") if isinstance(meta, dict) else None
    if scene and "objects" in scene:
        return tuple(sorted((o["shape"], o["color"], o["size"]) for o in scene["objects"]))
    return text


class ContrastiveEncoder(nn.Module, Pretrained):
    """Image tower + text projection; the frozen text model is loaded beside it, never saved."""

    config_class = ContrastiveConfig

    def __init__(self, config: ContrastiveConfig) -> None:
        super().__init__()
        self.config = config
        self.vision = ViT(config.vision)
        self.image_proj = nn.Linear(config.vision.dim, config.embed_dim, bias=False)
        self.text_proj = nn.Linear(config.text_dim, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.init_logit_scale))
        self.logit_bias = nn.Parameter(torch.tensor(config.init_logit_bias))
        self.dense_proj = nn.Linear(config.vision.dim, config.text_dim) if config.dense_weight > 0 else None
        self._text: FrozenTextEncoder | None = None

    @property
    def text_encoder(self) -> FrozenTextEncoder:
        if self._text is None:
            self._text = FrozenTextEncoder(self.config.text_model)
        return self._text

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, embed_dim) unit vectors."""
        return F.normalize(self.image_proj(self.vision(images)).float(), dim=-1)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """N strings -> (N, embed_dim) unit vectors."""
        frozen = self.text_encoder(texts).to(self.text_proj.weight.device)
        return F.normalize(self.text_proj(frozen).float(), dim=-1)

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        texts = batch["text"]
        dense = self.dense_proj is not None
        layers = (-1, self.config.dense_layer) if dense else (-1,)
        grids = self.vision.grids(batch["image"], layers)  # one pass for both losses
        img = F.normalize(self.image_proj(self.vision.pool(grids[0])).float(), dim=-1)
        txt = self.embed_texts(texts)
        keys = [_match_key(t, m) for t, m in zip(texts, batch.get("meta") or [{}] * len(texts), strict=True)]
        match = torch.tensor([[a == b for b in keys] for a in keys], device=img.device)
        loss = siglip_loss(img, txt, self.logit_scale, self.logit_bias, match)
        with torch.no_grad():
            acc = ((img @ txt.T).argmax(-1) == torch.arange(len(texts), device=img.device)).float().mean()
        out = {"siglip_loss": loss.detach(), "batch_r1": acc}
        if dense:
            dense_loss, dense_acc = self.grounded_loss(grids[1], batch["image"].shape[-1], batch.get("meta"))
            loss = loss + self.config.dense_weight * dense_loss
            out.update(dense_loss=dense_loss.detach(), patch_acc=dense_acc)
        return {"loss": loss, **out}

    def grounded_loss(self, grid: torch.Tensor, image_size: int, metas) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch -> object-phrase cross-entropy (see the module docstring) and the object patches'
        accuracy. grid (B, h, w, dim): layer `dense_layer`; metas: B dicts with "scene"."""
        from dialect.world import Scene, WorldConfig
        from dialect.world.grounding import BACKGROUND, PHRASES, patch_labels

        if not metas or any(not isinstance(m, dict) or "scene" not in m for m in metas):
            raise DialectError("the grounded patch loss (dense_weight > 0) needs ShapeWorld scenes in meta")
        c = self.config
        world = WorldConfig(size=image_size)
        labels = torch.from_numpy(
            np.stack([patch_labels(Scene.from_dict(m["scene"]), world, grid.shape[1]) for m in metas])
        ).to(grid.device)  # (B, h, w)
        phrases = self.text_encoder(list(PHRASES)).to(grid.device)  # (P, text_dim), unit rows
        patches = F.normalize(self.dense_proj(grid).float(), dim=-1)  # (B, h, w, text_dim)
        logits = patches @ phrases.T / c.dense_tau  # (B, h, w, P)
        ce = F.cross_entropy(logits.flatten(0, 2), labels.flatten(), reduction="none")
        is_obj = labels.flatten() != BACKGROUND
        weight = torch.where(is_obj, 1.0, c.dense_background)
        loss = (ce * weight).sum() / weight.sum()
        with torch.no_grad():
            hit = logits.flatten(0, 2).argmax(-1) == labels.flatten()
            acc = hit[is_obj].float().mean() if is_obj.any() else hit.float().mean()
        return loss, acc

    @torch.no_grad()
    def retrieval_r1(self, images: torch.Tensor, texts: list[str]) -> float:
        """Image -> text R@1 over the batch: the top-scoring caption is the image's own (or an
        identical string)."""
        sims = self.embed_images(images) @ self.embed_texts(texts).T
        best = sims.argmax(-1).tolist()
        return sum(texts[j] == texts[i] for i, j in enumerate(best)) / len(texts)
