"""The contrastive teacher: a ViT trained against a frozen text encoder with SigLIP's pairwise
sigmoid loss (the text-aligned vision encoder that TA-Tok quantizes, at our scale).

Loss (SigLIP): for every image i and text j in the batch, logit_ij = t * <u_i, v_j> + b with unit
vectors u (image) and v (text), t = exp(t'), init t' = log 10 and b = -10 (the SigLIP paper's
choices); label +1 if the pair matches and -1 otherwise; loss = -sum_ij log sigmoid(label * logit)
/ B. Two samples that describe the same thing are matches too, otherwise they would be pushed
apart: samples whose ShapeWorld scenes hold the same objects (shape, colour, size; taken from
`meta["scene"]` when the batch carries it), or else samples with identical caption text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

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
        img, txt = self.embed_images(batch["image"]), self.embed_texts(texts)
        keys = [_match_key(t, m) for t, m in zip(texts, batch.get("meta") or [{}] * len(texts), strict=True)]
        match = torch.tensor([[a == b for b in keys] for a in keys], device=img.device)
        loss = siglip_loss(img, txt, self.logit_scale, self.logit_bias, match)
        with torch.no_grad():
            acc = ((img @ txt.T).argmax(-1) == torch.arange(len(texts), device=img.device)).float().mean()
        return {"loss": loss, "batch_r1": acc}

    @torch.no_grad()
    def retrieval_r1(self, images: torch.Tensor, texts: list[str]) -> float:
        """Image -> text R@1 over the batch: the top-scoring caption is the image's own (or an
        identical string)."""
        sims = self.embed_images(images) @ self.embed_texts(texts).T
        best = sims.argmax(-1).tolist()
        return sum(texts[j] == texts[i] for i, j in enumerate(best)) / len(texts)
