"""The pixel VQ tokenizer (LlamaGen's VQ-GAN recipe at our scale): pixels <-> a grid of code ids.

It is the AR de-tokenizer's target vocabulary (shared/papers/tar.md: LlamaGen's VQ-16, 16,384
codes of dimension 8, L2-normalised, 16x downsampling). Shapes at the tiny preset's sizes:

    images (B, 3, H, W) in [-1, 1]
    -> ConvEncoder (GroupNorm residual blocks)       -> z   (B, D, H/f, W/f), f = 2^(levels - 1)
    -> VectorQuantizer (learned codebook, cosine)    -> z_q (B, D, h, w) unit vectors, ids (B, h, w)
    -> ConvDecoder                                   -> images (B, 3, H, W)

Grid size: f = 4 (a 16x16 grid for 64x64 images) by default. With f = 8 an 8x8 grid reached
31 dB PSNR on ShapeWorld in 6 CPU-minutes but turned many small squares into circles: a small
object then covers about one token, too little to keep its corners.

Training loss (all weights in :class:`PixelVQConfig`):
    l1_weight * |x - x'| + l2_weight * (x - x')^2            pixel reconstruction (means)
    + vq                                                    codebook 1.0 + commitment 0.25 (VQ terms)
    + perceptual_weight * P(x, x')                          optional, see below
    + disc_weight * g_loss + d_loss                         optional, once `disc_start` is reached
- Perceptual term P: there are no LPIPS weights offline, so the frozen feature network is a
  ContrastiveEncoder this project trains (`dialect train encoder`, folder in `perceptual_net`).
  P = mean over `perceptual_layers` of the LPIPS-style distance: the ViT's grid features of both
  images at that block, each position's channel vector L2-normalised, squared difference summed
  over channels, averaged over positions (LPIPS without its learned per-channel weights). The
  network is loaded on first use, is never trained and is not part of the checkpoint.
- GAN term: a PatchGAN discriminator (pix2pix's layout, GroupNorm instead of BatchNorm so a
  sample's logits do not depend on its batch) with hinge losses
      d_loss = (mean relu(1 - D(x)) + mean relu(1 + D(sg(x')))) / 2,   g_loss = -mean D'(x'),
  where D' is D evaluated (torch.func.functional_call) with detached parameters. The trainer has
  one optimizer over all parameters and one backward: d_loss moves only the discriminator (it sees
  detached reconstructions) and g_loss moves only the encoder/decoder/codebook (D's parameters
  are detached there). Fixed disc_weight (LlamaGen's default; no adaptive weight). Both terms switch
  on once the `steps_seen` buffer (training forward calls, i.e. optimizer steps when grad_accum =
  1; saved with the weights, so it resumes) reaches `disc_start`. Before that the discriminator
  enters the loss with weight 0, so every parameter takes part in every step (DDP requirement) and
  only AdamW's weight decay touches it.
  Note the trainer's global gradient clipping sees the discriminator's gradients too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dialect.core.errors import DialectError
from dialect.core.pretrained import Pretrained, fingerprint
from dialect.encoders.conv import ConvDecoder, ConvEncoder
from dialect.encoders.vit import ViT
from dialect.quant.vq import VectorQuantizer, VQConfig


def _default_vq() -> VQConfig:
    return VQConfig(dim=8, num_codes=1024, metric="cosine", codebook="learned", stochastic=False,
                    restart_dead_codes=True, dead_after=100)  # fmt: skip


@dataclass
class PixelVQConfig:
    image_size: int = 64  # training side in pixels; any side divisible by `downsample` encodes
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # widths per level; f = 2^(n-1)
    num_res_blocks: int = 1  # residual blocks per level
    # quantizer: K codes of width D, L2-normalised (cosine metric), learned, argmax (not stochastic)
    vq: VQConfig = field(default_factory=_default_vq)
    l1_weight: float = 1.0  # weight of the mean absolute pixel error
    l2_weight: float = 1.0  # weight of the mean squared pixel error
    perceptual_weight: float = 0.0  # weight of the feature distance (0 = off)
    perceptual_net: str = ""  # trained ContrastiveEncoder folder giving the frozen features
    perceptual_layers: list[int] = field(default_factory=lambda: [0, -2])  # ViT blocks read (-1 = top)
    disc_weight: float = 0.0  # weight of the generator's hinge term (0 = no discriminator at all)
    disc_start: int = 0  # training forward calls before the GAN terms switch on
    disc_channels: int = 64  # width of the discriminator's first layer
    disc_layers: int = 3  # stride-2 layers of the discriminator

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)


class PatchDiscriminator(nn.Module):
    """PatchGAN: (B, 3, H, W) -> (B, 1, h', w') real/fake logits, one per overlapping patch."""

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, layers + 1):
            out = channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            norm = nn.GroupNorm(max(1, min(32, out // 4)), out)
            mods += [nn.Conv2d(ch, out, 4, stride=stride, padding=1), norm, nn.LeakyReLU(0.2)]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class FeatureDistance:
    """LPIPS-style distance from a frozen ViT (see the module docstring); not an nn.Module, so the
    tokenizer neither trains nor saves it."""

    def __init__(self, vit: ViT, layers: list[int]) -> None:
        if not layers:
            raise DialectError("perceptual_layers must name at least one ViT layer")
        self.vit = vit.eval().requires_grad_(False)
        self.layers = list(layers)

    @classmethod
    def from_encoder_folder(cls, path: str | Path, layers: list[int]) -> FeatureDistance:
        from dialect.encoders.contrastive import ContrastiveEncoder

        if not path or not Path(path, "config.json").is_file():
            raise DialectError(
                f"perceptual_net {str(path)!r} is not a trained ContrastiveEncoder folder: train one with "
                "`dialect train encoder --preset tiny` and point model.perceptual_net at its model/ folder"
            )
        return cls(ContrastiveEncoder.from_pretrained(path).vision, layers)

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """x, target (B, 3, H, W) -> scalar; gradients reach x only."""
        self.vit.to(x.device)
        total = x.new_zeros((), dtype=torch.float32)
        for layer in self.layers:
            fx = F.normalize(self.vit.grid_features(x, layer=layer).float(), dim=-1)  # (B, h, w, C)
            with torch.no_grad():
                ft = F.normalize(self.vit.grid_features(target, layer=layer).float(), dim=-1)
            total = total + (fx - ft).pow(2).sum(-1).mean()
        return total / len(self.layers)


class PixelVQ(nn.Module, Pretrained):
    """Images (B, 3, H, W) in [-1, 1] <-> code ids (B, H/f, W/f) in [0, K); see the module docstring."""

    config_class = PixelVQConfig

    def __init__(self, config: PixelVQConfig) -> None:
        super().__init__()
        if config.image_size % config.downsample:
            raise DialectError(
                f"pixelvq: image_size {config.image_size} is not divisible by {config.downsample}"
            )
        if min(config.l1_weight, config.l2_weight, config.perceptual_weight, config.disc_weight) < 0:
            raise DialectError("pixelvq: loss weights must be >= 0")
        self.config = config
        d = config.vq.dim
        self.encoder = ConvEncoder(config.channels, d, config.num_res_blocks)
        self.quantizer = VectorQuantizer(config.vq)
        self.decoder = ConvDecoder(config.channels, d, config.num_res_blocks)
        self.discriminator = (
            PatchDiscriminator(config.disc_channels, config.disc_layers) if config.disc_weight > 0 else None
        )
        # training forward calls so far: decides when the GAN terms switch on; saved, so it resumes
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self._perceptual: FeatureDistance | None = None
        # channels-last conv weights: about 1.5-2x faster convolutions on CPU (oneDNN) and GPU
        # (cuDNN) at these widths; checkpoints store plain contiguous tensors either way
        self.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ shapes
    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a frozen copy needs: everything but the training-only discriminator."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("discriminator.")}

    def inference_config(self) -> PixelVQConfig:
        """This config without the training-only terms (discriminator, perceptual net)."""
        return replace(self.config, disc_weight=0.0, perceptual_weight=0.0, perceptual_net="")

    def fingerprint(self) -> str:
        """Of the inference part only (`inference_config`, `inference_state_dict`), so a trained
        folder and the frozen copy a de-tokenizer carries agree."""
        return fingerprint(self.inference_config(), self.inference_state_dict())

    @property
    def grid_size(self) -> int:
        """Side of the id grid for `config.image_size` images (image_size / downsample)."""
        return self.config.image_size // self.config.downsample

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def _check_images(self, images: torch.Tensor) -> None:
        f = self.config.downsample
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] % f or images.shape[3] % f:
            raise DialectError(
                f"pixelvq expects images (B, 3, H, W) with H and W divisible by {f}, "
                f"got shape {tuple(images.shape)}"
            )

    # ------------------------------------------------------------------ encode / decode
    def _quantize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        images = images.contiguous(memory_format=torch.channels_last)
        z = self.encoder(images).permute(0, 2, 3, 1)  # (B, h, w, D), channel-last for the quantizer
        z_q, ids, aux = self.quantizer(z)
        return z_q.permute(0, 3, 1, 2), ids, aux  # (B, D, h, w), (B, h, w)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> z_q (B, D, H/f, W/f) unit code vectors, ids (B, H/f, W/f) int64."""
        self._check_images(images)
        z_q, ids, _ = self._quantize(images)
        return z_q, ids

    @torch.no_grad()
    def encode_ids(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> LongTensor (B, H/f, W/f) of code ids in [0, K)."""
        return self.encode(images)[1]

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q (B, D, h, w) -> images (B, 3, h*f, w*f) clamped to [-1, 1]."""
        if z_q.dim() != 4 or z_q.shape[1] != self.config.vq.dim:
            d = self.config.vq.dim
            raise DialectError(f"pixelvq.decode expects (B, {d}, h, w), got {tuple(z_q.shape)}")
        return self.decoder(z_q).clamp(-1, 1)

    @torch.no_grad()
    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """LongTensor (B, h, w) of ids in [0, K) -> images (B, 3, h*f, w*f) in [-1, 1].

        Ids outside [0, K) or a shape other than (B, h, w) -> DialectError."""
        ids = torch.as_tensor(ids)
        if ids.dim() != 3:
            raise DialectError(f"pixelvq ids must be (batch, rows, cols), got shape {tuple(ids.shape)}")
        codes = self.quantizer.lookup(ids.to(self.steps_seen.device))  # (B, h, w, D) fp32, range-checked
        dtype = next(self.decoder.parameters()).dtype
        return self.decode(codes.permute(0, 3, 1, 2).to(dtype))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, 3, H, W) in [-1, 1] through the quantized grid."""
        return self.decode(self.encode(images)[0])

    # ------------------------------------------------------------------ training
    def gan_active(self) -> bool:
        return self.discriminator is not None and int(self.steps_seen) >= self.config.disc_start

    def perceptual(self) -> FeatureDistance:
        """The frozen feature distance, loaded from `perceptual_net` on first use."""
        if self._perceptual is None:
            cfg = self.config
            self._perceptual = FeatureDistance.from_encoder_folder(cfg.perceptual_net, cfg.perceptual_layers)
        return self._perceptual

    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.config
        x = batch["image"]
        gan = self.gan_active()
        if self.training:
            self.steps_seen += 1
        z_q, ids, aux = self._quantize(x)
        recon = self.decoder(z_q).float()  # (B, 3, H, W), unclamped so every pixel has a gradient
        l1, l2 = F.l1_loss(recon, x.float()), F.mse_loss(recon, x.float())
        loss = cfg.l1_weight * l1 + cfg.l2_weight * l2 + aux["loss"]
        out = {"l1": l1, "l2": l2, "vq": aux["loss"], "commit": aux["commit_loss"]}
        if cfg.perceptual_weight > 0:
            out["perceptual"] = self.perceptual()(recon, x)
            loss = loss + cfg.perceptual_weight * out["perceptual"]
        if self.discriminator is not None:
            if gan:
                out["g_loss"], out["d_loss"] = self._gan_losses(x, recon)
                loss = loss + cfg.disc_weight * out["g_loss"] + out["d_loss"]
            else:  # weight 0: every parameter takes part (DDP); zero gradient, only weight decay
                loss = loss + 0.0 * sum(p.sum() for p in self.discriminator.parameters())
        with torch.no_grad():
            distinct = torch.tensor(float(torch.unique(ids).numel()), device=ids.device)
            out["batch_usage"] = distinct / self.num_codes  # distinct codes in this batch / K
        return {"loss": loss, **out}

    def _gan_losses(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hinge losses; g_loss reaches only the generator, d_loss only the discriminator."""
        disc = self.discriminator
        frozen = {n: p.detach() for n, p in disc.named_parameters()}
        frozen.update(dict(disc.named_buffers()))
        g_loss = -functional_call(disc, frozen, (fake,)).float().mean()
        d_real = disc(real).float()
        d_fake = disc(fake.detach()).float()
        d_loss = 0.5 * (F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean())
        return g_loss, d_loss

    @torch.no_grad()
    def training_samples(self, batch: dict) -> torch.Tensor:
        """Inputs and reconstructions, interleaved: (2N, 3, H, W) in [-1, 1]."""
        x = batch["image"]
        return torch.stack([x, self(x).to(x.dtype)], dim=1).flatten(0, 1)
