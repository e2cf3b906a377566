"""AR-DTok: the autoregressive de-tokenizer (TA-Tok ids -> pixel-VQ ids -> pixels), as in Tar.

    TA-Tok ids (B, n_scale) at scale k
    -> frozen TA-Tok decoder: features on the full teacher grid (B, h*w, C)
    -> LayerNorm + Linear (+ scale embedding) -> prefix (B, h*w, dim)      [detok.condition]
    -> the project's one decoder-only transformer (lm.DecoderLM, KV cache) predicts the pixel-VQ
       ids in raster order, loss -sum_t log p(y_t | prefix, y_<t)
    -> frozen pixel-VQ decoder -> image (B, 3, H, W) in [-1, 1]

The paper's choices kept here: prefix conditioning through a linear layer on the *decoded*
features (not the raw ids), a LlamaGen-style transformer (RMSNorm, SwiGLU, KV cache), the
condition dropped 10% of the time in training and classifier-free guidance (scale 4.0) at
inference. Where we differ: the dropped condition is a learned null prefix rather than zeros
(the paper zeroes it), so guidance contrasts with a condition the model was trained on; and the
pixel VQ is our own CPU-sized one (16x16 grid of 8-d codes for 64x64 images) instead of
LlamaGen's VQ-16.

Our addition, `aligned_condition` (default on): each image token fed back into the transformer
also carries the condition vector of the grid cell of the token it predicts (the condition grid
upsampled to the pixel-VQ grid, nearest). With a prefix alone the model must learn, through 1-D
positions, which of the 64 prefix cells sits under each of the 256 raster tokens. With the
condition dropped (CFG), the null prefix's cells are used, so guidance still contrasts conditional
and unconditional rows. `experiments/results/detok_fidelity.md` compares both settings.

One model serves every TA-Tok scale: decoded features always cover the full grid, so the prefix
has the same length at every scale, and a learned scale embedding tells the model which it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dialect.core.pretrained import Pretrained
from dialect.data.tokens import PIXEL_KEY, ids_key
from dialect.detok.condition import TATokCondition, resolve_generator
from dialect.lm import DecoderLM, LMConfig, SamplingConfig
from dialect.tokenizers.pixelvq import PixelVQ, PixelVQConfig
from dialect.tokenizers.tatok import TATok, TATokConfig


@dataclass
class ARDTokConfig:
    tatok: TATokConfig = field(default_factory=TATokConfig)  # the frozen condition tokenizer
    codec: PixelVQConfig = field(default_factory=PixelVQConfig)  # the frozen pixel tokenizer
    # the transformer; vocab_size and max_len are set from the codec and TA-Tok when built
    lm: LMConfig = field(default_factory=lambda: LMConfig(dim=256, depth=4, heads=4))
    cond_drop: float = 0.1  # probability of training on the null condition (the paper: 10%)
    aligned_condition: bool = True  # also add each token's condition cell to its input (ours)
    scale_weights: list[float] = field(default_factory=list)  # training draw; [] = the TA-Tok's
    # inference defaults (each overridable per call)
    guidance: float = 4.0  # classifier-free guidance scale (the paper: 4.0; 1.0 = off)
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1.0 = off


class ARDTok(nn.Module, Pretrained):
    """Frozen TA-Tok condition + frozen pixel VQ + a trainable decoder-only transformer."""

    config_class = ARDTokConfig

    def __init__(self, config: ARDTokConfig) -> None:
        super().__init__()
        self.config = config
        self.codec = PixelVQ(config.codec).eval().requires_grad_(False)
        self.condition = TATokCondition(config.tatok, config.lm.dim, config.cond_drop, config.scale_weights)
        # the LM's sizes follow from the two tokenizers, so configs cannot disagree with them
        config.lm.vocab_size = self.codec.num_codes
        config.lm.max_len = self.condition.num_tokens + self.num_image_tokens
        config.lm.prefix_dim = 0  # the condition already projects to the LM width
        self.lm = DecoderLM(config.lm)
        # per-channel gate on the aligned condition: the projected condition starts ~10x larger
        # than the token embeddings (std 0.02) and would drown the tokens' identity at first
        self.align_gate = (
            nn.Parameter(torch.full((config.lm.dim,), 0.1)) if config.aligned_condition else None
        )

    @property
    def num_image_tokens(self) -> int:
        """Pixel-VQ codes per image (grid_size^2), generated in raster order."""
        return self.codec.grid_size**2

    def load_submodels(self, tatok: TATok, codec: PixelVQ) -> None:
        """Copy trained TA-Tok / pixel-VQ weights into the frozen sub-models (configs must match;
        the codec's discriminator, a training-only part, is not carried)."""
        self.condition.load_tatok(tatok)
        self.codec.load_state_dict(codec.inference_state_dict())

    def train(self, mode: bool = True) -> ARDTok:
        super().train(mode)
        self.codec.eval()  # frozen: the condition keeps its TA-Tok in eval itself
        return self

    def _aligned(self, cond: torch.Tensor) -> torch.Tensor | None:
        """Condition tokens (B, h*w, dim) -> the cell under each fed id: (B, g*g - 1, dim), where
        fed id j (image token j) gets the cell of token j + 1; None when `aligned_condition` is off."""
        if not self.config.aligned_condition:
            return None
        B, n, dim = cond.shape
        h, g = self.condition.grid, self.codec.grid_size
        grid = cond.transpose(1, 2).reshape(B, dim, h, h)
        up = nn.functional.interpolate(grid.float(), size=(g, g), mode="nearest").to(cond.dtype)
        return up.flatten(2).transpose(1, 2)[:, 1:] * self.align_gate

    # ------------------------------------------------------------------ training
    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Images are tokenized here; a pretokenized batch (its stored pixel-VQ and TA-Tok ids,
        `dialect.data.tokens`) is read as it is, with the same result."""
        if PIXEL_KEY in batch:
            target = batch[PIXEL_KEY].flatten(1)  # (B, grid^2)
            prefix, scale = self.condition.stored_condition(batch)
        else:
            images = batch["image"]
            with torch.no_grad():
                target = self.codec.encode_ids(images).flatten(1)  # (B, grid^2)
            prefix, scale = self.condition.training_condition(images)
        # row t predicts target[:, t]; fed id t (target t) carries the cell of target t + 1
        logits = self.lm(target[:, :-1], prefix=prefix, token_bias=self._aligned(prefix)).float()
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": loss, "token_acc": acc.detach(), "scale": torch.tensor(float(scale))}

    @torch.no_grad()
    def training_samples(self, batch: dict) -> torch.Tensor:
        """Inputs and finest-scale reconstructions, interleaved: (2N, 3, H, W) in [-1, 1]. From a
        pretokenized batch the inputs are the pixel VQ's decoding of the stored ids."""
        if PIXEL_KEY in batch:
            x = self.codec.decode_ids(batch[PIXEL_KEY][:8])
            out = self.decode_ids(batch[ids_key(0)][:8], 0, seed=0)
        else:
            x = batch["image"][:8]
            out = self.reconstruct(x, 0, seed=0)
        return torch.stack([x, out.to(x.dtype)], dim=1).flatten(0, 1)

    # ------------------------------------------------------------------ inference
    def sampling(self, **overrides) -> SamplingConfig:
        """The config's sampling defaults with per-call overrides (None = keep the default)."""
        c = self.config
        values = {"temperature": c.temperature, "top_k": c.top_k, "top_p": c.top_p, "cfg_scale": c.guidance}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return SamplingConfig(**values)

    @torch.no_grad()
    def generate_ids(
        self,
        features: torch.Tensor,
        scale: int,
        guidance: float | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decoded TA-Tok features (B, h*w, C) from scale `scale` -> pixel-VQ ids (B, g, g)."""
        self.condition.tatok._check_scale(scale)
        cfg = self.sampling(cfg_scale=guidance, temperature=temperature, top_k=top_k, top_p=top_p)
        prefix = self.condition.project(features, scale)
        uncond = self.condition.null(prefix.shape[0]) if cfg.cfg_scale != 1.0 else None
        ids = self.lm.generate(
            prefix, self.num_image_tokens, cfg, uncond_prefix=uncond, generator=generator,
            token_bias=self._aligned(prefix),
            uncond_token_bias=None if uncond is None else self._aligned(uncond),
        )  # fmt: skip
        side = self.codec.grid_size
        return ids.view(-1, side, side)

    @torch.no_grad()
    def decode_ids(
        self,
        ids: torch.Tensor,
        scale: int,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **sampling,
    ) -> torch.Tensor:
        """TA-Tok ids (B, n_scale) at scale `scale` -> images (B, 3, H, W) in [-1, 1].

        Randomness: `generator` if given, else a fresh one seeded with `seed` (else the global
        RNG). `sampling` overrides guidance / temperature / top_k / top_p for this call."""
        generator = resolve_generator(generator, seed, self.lm.head.weight.device)
        features = self.condition.features(ids, scale)
        pixel_ids = self.generate_ids(features, scale, generator=generator, **sampling)
        return self.codec.decode_ids(pixel_ids).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(
        self, images: torch.Tensor, scale: int = 0, seed: int | None = None, **sampling
    ) -> torch.Tensor:
        """Images -> TA-Tok ids at `scale` -> de-tokenized images, same shape, in [-1, 1]."""
        return self.decode_ids(self.condition.encode_ids(images, scale), scale, seed=seed, **sampling)
