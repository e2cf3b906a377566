"""TA-Tok: the text-aligned image tokenizer (Tar, arXiv 2506.18898), with its training loss.

Pipeline (the paper's sizes in brackets; ours are CPU-sized):
    images (B, 3, H, W) in [-1, 1]
    -> frozen teacher grid features (B, h, w, C)           [SigLIP2 penultimate, 27x27x1152]
    -> Linear + Tanh (trainable adapter)
    -> scale-adaptive pooling: avg-pool, kernel = stride = s for s in `pool_scales`
       -> (h // s)^2 tokens per image at scale index k     [s = 1, 2, 3 -> 729 / 169 / 81]
    -> Linear to the codebook width D, L2-normalise        [D = LLM hidden size]
    -> vector quantization against C = L2norm(W E + b)     [E = 65,536 frozen LLM embedding rows]
    -> a small transformer decoder (2-D RoPE, any grid size) reconstructs the teacher features
       of the full h x w grid from the tokens of any scale [3 layers]
Loss: feature reconstruction + the VQ terms (codebook 1.0, commitment 0.25). The training scale
is drawn at random per batch with `scale_weights`.

Reconstruction target: the teacher features passed through a parameter-free LayerNorm over
channels (as BEiT v2 / MaskFeat-style feature targets do), so the loss does not depend on the
teacher's activation scale; loss = MSE + (1 - cosine). The paper does not state its exact
feature loss; this is our documented choice.

Scale k is an index into `pool_scales` (0 = finest); its LM marker token is `<S{k}>`.

Grids that s does not divide (the paper's 27x27 at s = 2): the paper's counts are 27 // s per side
(169 = 13^2), and plain kernel = stride = 2 pooling would drop the last row and column. We pool
adaptively instead (:func:`pool_grid`: 13 windows of 3 cells, neighbours sharing one), so every
cell reaches a token; the decoder spreads token i back over cells j with j * 13 // 27 == i
(:func:`unpool_grid`). When s divides the side both are exactly kernel = stride = s pooling and
nearest repetition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.errors import DialectError
from dialect.core.pretrained import Pretrained
from dialect.encoders.vit import ViT, ViTConfig
from dialect.nn.blocks import Stack
from dialect.nn.rope import rope_2d
from dialect.quant.vq import VectorQuantizer, VQConfig


@dataclass
class TATokConfig:
    teacher: ViTConfig = field(default_factory=ViTConfig)  # architecture of the frozen teacher tower
    teacher_layer: int = -2  # hidden layer read from the teacher (the paper: penultimate)
    hf_teacher: str = ""  # local HF vision folder (SigLIP/CLIP) used instead of `teacher` when set
    pool_scales: list[int] = field(default_factory=lambda: [1, 2, 4])  # 8x8 grid -> 64 / 16 / 4 tokens
    scale_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])  # training draw
    # quantizer + codebook source: text-aligned (E = rows of the shipped MiniLM, D = 384) by default;
    # vq.codebook=learned is the ablation baseline. The chosen K source words are written into
    # vq.tokens when the model is built, so a saved config.json names every code's word.
    vq: VQConfig = field(default_factory=lambda: VQConfig(dim=384, num_codes=4096))
    decoder_dim: int = 192
    decoder_depth: int = 3
    decoder_heads: int = 4

    @property
    def num_scales(self) -> int:
        return len(self.pool_scales)


class TATok(nn.Module, Pretrained):
    """Images <-> text-aligned token ids. See the module docstring for the pipeline."""

    config_class = TATokConfig

    def __init__(self, config: TATokConfig) -> None:
        super().__init__()
        if len(config.scale_weights) != config.num_scales:
            raise DialectError("tatok: scale_weights needs one weight per entry of pool_scales")
        self.config = config
        self.teacher = self._build_teacher(config).eval().requires_grad_(False)
        c = self.teacher.feature_dim
        self.adapter = nn.Sequential(nn.Linear(c, c), nn.Tanh())
        self.to_code = nn.Linear(c, config.vq.dim)
        self.quantizer = VectorQuantizer(config.vq)  # fills config.vq.tokens on a fresh build
        self.from_code = nn.Linear(config.vq.dim, config.decoder_dim)
        self.scale_embed = nn.Embedding(config.num_scales, config.decoder_dim)
        self.decoder = Stack(config.decoder_dim, config.decoder_depth, config.decoder_heads)
        self.to_feature = nn.Linear(config.decoder_dim, c)

    # ------------------------------------------------------------------ build
    @staticmethod
    def _build_teacher(config: TATokConfig) -> nn.Module:
        if config.hf_teacher:
            from dialect.encoders.hf import HFVisionTower

            return HFVisionTower(config.hf_teacher, layer=config.teacher_layer)
        return ViT(config.teacher)

    # ------------------------------------------------------------------ shapes
    @property
    def grid(self) -> int:
        """Side of the teacher's full feature grid."""
        return self.teacher.grid_size(self.config.teacher.image_size)

    def scale_side(self, scale: int) -> int:
        self._check_scale(scale)
        return self.grid // self.config.pool_scales[scale]

    def num_tokens(self, scale: int) -> int:
        return self.scale_side(scale) ** 2

    def _check_scale(self, scale: int) -> None:
        if not 0 <= scale < self.config.num_scales:
            raise DialectError(f"scale must be in [0, {self.config.num_scales - 1}], got {scale}")

    # ------------------------------------------------------------------ encode
    @torch.no_grad()
    def teacher_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, h, w, C), the frozen teacher's layer-normed features (the target)."""
        feats = self.teacher.grid_features(images, layer=self.config.teacher_layer).float()
        return F.layer_norm(feats, feats.shape[-1:])

    def _pre_quant(self, feats: torch.Tensor, scale: int) -> torch.Tensor:
        """(B, h, w, C) -> (B, n_scale, D) unit vectors before quantization."""
        x = self.adapter(feats)
        x = pool_grid(x, self.config.pool_scales[scale])
        return F.normalize(self.to_code(x.flatten(1, 2)).float(), dim=-1)

    def encode(self, images: torch.Tensor, scale: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """-> (z_q (B, n, D), ids (B, n), aux) at scale index `scale`."""
        self._check_scale(scale)
        return self.quantizer(self._pre_quant(self.teacher_features(images), scale))

    @torch.no_grad()
    def encode_ids(
        self, images: torch.Tensor, scale: int = 0, anchor: torch.Tensor | None = None, margin: float = 0.0
    ) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> LongTensor (B, n_scale) of code ids in [0, K).

        `anchor` (B, n_scale) ids, e.g. the codes of an edit's source image at this scale: keep the
        anchor's code wherever it is within `margin` of the best (`VectorQuantizer.anchored_ids`)."""
        if anchor is None:
            return self.encode(images, scale)[1]
        self._check_scale(scale)
        z = self._pre_quant(self.teacher_features(images), scale)
        return self.quantizer.anchored_ids(z, anchor, margin)

    @torch.no_grad()
    def encode_ids_all(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> the ids of every scale, [(B, n_0), (B, n_1), ...]: what
        `encode_ids(images, k)` gives for each k, from ONE pass of the frozen teacher (the costly
        part; `dialect pretokenize` stores every scale)."""
        feats = self.teacher_features(images)
        return [self.quantizer(self._pre_quant(feats, k))[1] for k in range(self.config.num_scales)]

    def stored_ids(self, ids: torch.Tensor, scale: int) -> torch.Tensor:
        """Ids stored by `dialect pretokenize`, every scale concatenated in scale order
        (B, sum_k n_k) -> the ids of `scale` (B, n_scale), a view; no encoding."""
        self._check_scale(scale)
        start = sum(self.num_tokens(k) for k in range(scale))
        total = sum(self.num_tokens(k) for k in range(self.config.num_scales))
        if ids.dim() != 2 or ids.shape[1] != total:
            raise DialectError(f"stored ids must be (batch, {total}), got {tuple(ids.shape)}")
        return ids[:, start : start + self.num_tokens(scale)]

    # ------------------------------------------------------------------ decode
    def decode(self, z_q: torch.Tensor, scale: int) -> torch.Tensor:
        """(B, n_scale, D) quantized vectors -> (B, h, w, C) reconstructed teacher features."""
        side = self.scale_side(scale)
        if z_q.shape[1] != side * side:
            raise DialectError(f"scale {scale} has {side * side} tokens per image, got {z_q.shape[1]}")
        x = self.from_code(z_q).view(z_q.shape[0], side, side, -1)
        x = unpool_grid(x, self.grid)  # each token over the cells it pooled; attention refines
        x = x.flatten(1, 2) + self.scale_embed.weight[scale]
        head_dim = self.config.decoder_dim // self.config.decoder_heads
        rope = tuple(t.to(x.device) for t in rope_2d(self.grid, self.grid, head_dim))
        x = self.decoder(x, rope=rope)
        return self.to_feature(x).view(z_q.shape[0], self.grid, self.grid, -1)

    def decode_ids(self, ids: torch.Tensor, scale: int) -> torch.Tensor:
        """LongTensor (B, n_scale) -> (B, h, w, C) features; bad ids or lengths -> DialectError."""
        if ids.dim() != 2:
            raise DialectError(f"ids must be (batch, tokens), got shape {tuple(ids.shape)}")
        return self.decode(self.quantizer.lookup(ids), scale)

    def codebook_words(self, ids: torch.Tensor | list[int]) -> list:
        """Source token of each code (the "dialect" view), nested like `ids`; out-of-range ids ->
        DialectError (a learned codebook has no words)."""
        return self.quantizer.codebook_words(ids)

    # ------------------------------------------------------------------ training
    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        weights = torch.tensor(self.config.scale_weights)
        scale = int(torch.multinomial(weights, 1))
        target = self.teacher_features(batch["image"])
        z_q, _, aux = self.quantizer(self._pre_quant(target, scale))
        pred = self.decode(z_q, scale).float()
        mse = F.mse_loss(pred, target)
        cos = F.cosine_similarity(pred, target, dim=-1).mean()
        loss = mse + (1 - cos) + aux["loss"]
        return {"loss": loss, "mse": mse, "cos": cos, "vq": aux["loss"]}

    def train(self, mode: bool = True) -> TATok:
        super().train(mode)
        self.teacher.eval()  # frozen: always in inference mode
        return self


def pool_grid(x: torch.Tensor, s: int) -> torch.Tensor:
    """Scale-adaptive pooling of a channel-last grid: (B, h, w, C) -> (B, h // s, w // s, C).

    Average pooling with kernel = stride = s (the paper) when s divides h and w; otherwise adaptive
    average pooling to (h // s, w // s) windows, which covers every cell (27 -> 13: windows of 3)."""
    if s == 1:
        return x
    h, w = x.shape[1:3]
    t = x.permute(0, 3, 1, 2)
    if h % s == 0 and w % s == 0:
        t = F.avg_pool2d(t, kernel_size=s, stride=s)
    else:
        t = F.adaptive_avg_pool2d(t, (h // s, w // s))
    return t.permute(0, 2, 3, 1)


def unpool_grid(x: torch.Tensor, side: int) -> torch.Tensor:
    """Nearest spreading of a (B, n, n, C) token grid onto (B, side, side, C): cell j takes token
    j * n // side (exact integer arithmetic; repeat_interleave by side / n when n divides side)."""
    n = x.shape[1]
    if n == side:
        return x
    idx = torch.arange(side, device=x.device) * n // side
    return x.index_select(1, idx).index_select(2, idx)


def token_string(ids: torch.Tensor | list[int], scale: int) -> str:
    """The LM-side spelling of one image's codes: `<S{scale}><I{id}><I{id}>...`."""
    return f"<S{scale}>" + "".join(f"<I{int(i)}>" for i in torch.as_tensor(ids).flatten().tolist())
