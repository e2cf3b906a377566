"""Dif-DTok: the diffusion de-tokenizer (TA-Tok ids -> pixels), trained with flow matching.

Tar (shared/papers/tar.md) decodes TA-Tok tokens to pixels with a diffusion model conditioned on
the TA-Tok features decoded from the tokens. Ours is a small diffusion transformer:

    target x0: the frozen pixel VQ's quantized latent z_q (B, D, h, w) * sqrt(D)   (space="latent")
               or the image itself (B, 3, H, W) in [-1, 1]                          (space="pixel")
        (pixel-VQ codes are unit vectors, so z_q * sqrt(D) has unit mean square per channel)
    sequence (one full, non-causal attention over all of it):
        [ condition tokens (full TA-Tok grid, h_c * w_c) | target patches (n_p) ]
        - condition tokens: see :mod:`dialect.detok.condition` (frozen TA-Tok, projection, null
          embedding for classifier-free guidance), in context, so any scale works
        - target patches: patch_size x patch_size patches of x_t, Linear to `dim`, plus the
          condition tokens resampled onto the patch grid (identity when the grids match, else
          area-pooled or bilinear), so each patch also reads the features right above it.
          Measured (tiny preset at width 128, batch 16, ShapeWorld, CPU): with in-context tokens
          only, the loss at t = 0.8 was 0.409 with the condition vs 0.422 with the null one after
          120 steps (the condition still unused); with the added copy, 0.294 vs 0.389 after 160,
          and scale-0 samples already followed the layout of their input.
        - a learned type embedding per kind of token; 2-D RoPE on the condition and target grids
          laid over one common frame (side F = the larger grid; a grid of side n sits at positions
          floor(i F / n)), so condition token (i, j) and the patch under it share a position.
    time: sinusoidal(1000 t) -> MLP -> adaLN-zero (DiT): every block is the shared `Block`
        (RMSNorm, SDPA attention, SwiGLU) with its two branches modulated as
        x + gate * branch(norm(x) * (1 + scale) + shift), shift/scale/gate = Linear(silu(t_emb)),
        zero-initialised so each block starts as the identity; the final norm is modulated too.
        Measured on a one-image overfit (2 blocks, width 64, 200 AdamW steps at 3e-3; means of the
        first and last 20 steps): loss 1.22 -> 0.21 with adaLN-zero, 1.22 -> 0.38 with the time
        as an extra in-context token.
    output: the target tokens -> Linear (zero-initialised) -> velocity patches -> (B, C, S, S).

Flow matching (rectified flow), t = 0 is data and t = 1 is noise:
    x_t = (1 - t) x0 + t eps,   eps ~ N(0, I),   velocity target v = eps - x0,
    t = sigmoid(n), n ~ N(t_mean, t_std)  (logit-normal, SD3's default m = 0, s = 1),
    loss = mean ||F(x_t, t, c) - v||^2 over every target element.
The paper writes the loss as predicting y0; with this path F's x0 estimate is x_t - t F.
Sampling: Euler on dx/dt = v from t = 1 (pure noise) to t = 0 over a uniform grid of `steps`
steps; classifier-free guidance v = v_u + g (v_c - v_u), with the conditional and unconditional
rows in ONE batched forward (2B rows) per step (g = 1 needs only the conditional rows).

Latent decoding: the sample is divided by sqrt(D) and (with `snap`, the default) replaced by the
nearest code of the pixel VQ before its decoder runs; see `DifDTokConfig.snap` for the measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.errors import DialectError
from dialect.core.pretrained import Pretrained
from dialect.data.tokens import PIXEL_KEY, ids_key
from dialect.detok.condition import TATokCondition, resolve_generator
from dialect.nn.blocks import Block, RMSNorm, init_transformer_weights
from dialect.nn.compile import CompilableLayer
from dialect.nn.rope import rope_2d
from dialect.tokenizers.pixelvq import PixelVQ, PixelVQConfig
from dialect.tokenizers.tatok import TATok, TATokConfig

SPACES = ("latent", "pixel")
Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class DifDTokConfig:
    tatok: TATokConfig = field(default_factory=TATokConfig)  # the frozen TA-Tok (copied from its folder)
    codec: PixelVQConfig = field(default_factory=PixelVQConfig)  # the frozen pixel VQ (space=latent)
    space: str = "latent"  # "latent": diffuse the pixel VQ's z_q grid | "pixel": diffuse pixels
    image_size: int = 64  # output side in pixels (latent: the codec's grid is image_size / f)
    patch_size: int = 2  # side of one target patch (latent 16x16 -> 8x8 tokens; try 8 for pixel)
    dim: int = 256  # transformer width
    depth: int = 6  # transformer blocks
    heads: int = 4  # attention heads (dim / heads must be divisible by 4 for 2-D RoPE)
    cond_drop: float = 0.1  # probability of replacing a sample's condition by the null one (CFG)
    scale_weights: list[float] = field(default_factory=list)  # training scale draw; [] = the TA-Tok's
    guidance: float = 3.0  # default classifier-free guidance scale (1 = no guidance)
    sample_steps: int = 25  # default Euler steps
    t_mean: float = 0.0  # logit-normal timestep sampling: t = sigmoid(N(t_mean, t_std))
    t_std: float = 1.0
    # latent: snap each sampled vector to the nearest pixel-VQ code before decoding. Measured on 8
    # ShapeWorld images (a 160-step tiny run over a 100-step pixel VQ, 25 steps, guidance 3): PSNR
    # +0.0 / +0.15 / +0.15 dB at scales 0 / 1 / 2 against the inputs and +0.3 dB against the
    # codec's own reconstructions, so it is on.
    snap: bool = True
    # Weight of the loss on foreground positions relative to background ones (0 = the plain mean):
    # each position's squared error gets 1 + fg_weight where the target differs from its image's
    # background (`foreground_mask`), and the weighted mean is normalised by the mean weight.
    # Measured (tiny preset, 6,000 steps, 500 fresh scenes at scale 0): fg_weight 4 (objects then
    # weigh half the loss instead of a sixth) redrew 0.740 of the scenes against 0.736 without,
    # shape recovered 0.87 vs 0.86: the decoder does not lose shapes for lack of loss on them.
    fg_weight: float = 0.0


def _validate(cfg: DifDTokConfig) -> None:
    if cfg.space not in SPACES:
        raise DialectError(f"difdtok: space must be one of {', '.join(SPACES)}; got {cfg.space!r}")
    if cfg.dim % cfg.heads or (cfg.dim // cfg.heads) % 4:
        raise DialectError(
            f"difdtok: dim / heads must be an integer divisible by 4, got {cfg.dim} / {cfg.heads}"
        )
    if cfg.sample_steps < 1 or cfg.t_std <= 0 or cfg.patch_size < 1 or cfg.fg_weight < 0:
        raise DialectError("difdtok: sample_steps and patch_size must be >= 1, t_std > 0, fg_weight >= 0")
    if cfg.space == "latent" and cfg.image_size % cfg.codec.downsample:
        raise DialectError(
            f"difdtok: image_size {cfg.image_size} is not divisible by the codec's {cfg.codec.downsample}"
        )


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """t (B,) in [0, 1] -> (B, dim) sinusoidal features of 1000 t (cos half, then sin half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def foreground_mask(images: torch.Tensor, side: int, tol: float = 0.1) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] -> (B, 1, side, side) float mask of the target positions
    that cover foreground: 1 where any pixel under the position differs from the image's
    background by more than `tol` in some channel. The background is the per-channel median over
    pixels: the canvas wherever it covers most of the image, as in ShapeWorld (there the mask holds
    about 17% of a 16x16 latent grid; in a photo it marks what stands out from the median colour).
    """
    background = images.flatten(2).median(dim=2).values[:, :, None, None]
    mask = ((images - background).abs().amax(dim=1, keepdim=True) > tol).float()
    return F.adaptive_max_pool2d(mask, side)


def euler_sample(
    velocity: Velocity,
    noise: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    steps: int,
    guidance: float,
) -> torch.Tensor:
    """Integrate dx/dt = v from t = 1 (x = noise) to t = 0 with `steps` uniform Euler steps.

    `velocity(x (N, ...), t (N,), c (N, ...))` is the network. With guidance != 1 each step runs ONE
    forward on the 2B rows [cond; uncond] and uses v_u + guidance (v_c - v_u); otherwise B rows.
    """
    if steps < 1:
        raise DialectError(f"steps must be >= 1, got {steps}")
    x = noise
    ts = torch.linspace(1.0, 0.0, steps + 1, device=noise.device)
    guided = guidance != 1.0
    both = torch.cat([cond, uncond]) if guided else cond
    for i in range(steps):
        t = ts[i].expand(noise.shape[0])
        if guided:
            v_c, v_u = velocity(torch.cat([x, x]), torch.cat([t, t]), both).float().chunk(2)
            v = v_u + guidance * (v_c - v_u)
        else:
            v = velocity(x, t, both).float()
        x = x + (ts[i + 1] - ts[i]) * v
    return x


class AdaLNBlock(CompilableLayer):
    """The shared pre-norm `Block` with DiT's adaLN-zero modulation from a conditioning vector c:
    x + gate_a * attn(norm1(x) * (1 + scale_a) + shift_a), then the same for the MLP branch.
    `train.compile` runs it compiled (`dialect.nn.compile`)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.block = Block(dim, heads)
        self.modulation = nn.Linear(dim, 6 * dim)  # zero-initialised by the model

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """x (B, T, dim), c (B, dim) -> (B, T, dim)."""
        return self.forward_fn()(x, c, rope)

    def _forward(
        self, x: torch.Tensor, c: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        b = self.block
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.modulation(F.silu(c))[:, None].chunk(
            6, dim=-1
        )
        x = x + gate_a * b.attn(b.norm1(x) * (1 + scale_a) + shift_a, rope=rope)
        return x + gate_m * b.mlp(b.norm2(x) * (1 + scale_m) + shift_m)


class DifDTok(nn.Module, Pretrained):
    """TA-Tok ids (any scale) -> images (B, 3, H, W) in [-1, 1]; see the module docstring."""

    config_class = DifDTokConfig

    def __init__(self, config: DifDTokConfig) -> None:
        super().__init__()
        _validate(config)
        self.config = config
        self.condition = TATokCondition(config.tatok, config.dim, config.cond_drop, config.scale_weights)
        if config.space == "latent":
            self.codec: PixelVQ | None = PixelVQ(config.codec).eval().requires_grad_(False)
            self.channels, self.side = config.codec.vq.dim, config.image_size // config.codec.downsample
            self.latent_scale = math.sqrt(self.channels)
        else:
            self.codec, self.channels, self.side, self.latent_scale = None, 3, config.image_size, 1.0
        p = config.patch_size
        if self.side % p:
            raise DialectError(
                f"difdtok: the {self.side}x{self.side} target grid is not divisible by patch_size {p}"
            )
        self.grid = self.side // p  # target patches per side
        d = config.dim
        self.patch_in = nn.Linear(self.channels * p * p, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.type_embed = nn.Parameter(torch.zeros(2, d))  # condition, target
        self.blocks = nn.ModuleList(AdaLNBlock(d, config.heads) for _ in range(config.depth))
        self.norm = RMSNorm(d)
        self.final_modulation = nn.Linear(d, 2 * d)  # shift, scale of the final norm
        self.patch_out = nn.Linear(d, self.channels * p * p)
        self._init_weights()
        cos, sin = self._rope_table()
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def _init_weights(self) -> None:
        """GPT-2 init for the trunk (`init_transformer_weights`), DiT's choices elsewhere: Xavier
        patch embedding (a 0.02-std one left the one-image overfit stuck near loss 1.0 for 200
        steps: the zero-initialised output then reads a tiny signal), N(0, 0.02) time MLP,
        zero modulations and output."""
        init_transformer_weights(self.blocks, self.config.depth)
        nn.init.xavier_uniform_(self.patch_in.weight)
        for m in (self.time_mlp[0], self.time_mlp[2]):
            nn.init.normal_(m.weight, std=0.02)
        nn.init.normal_(self.type_embed, std=0.02)
        for m in (self.patch_in, self.time_mlp[0], self.time_mlp[2], *self._zero_init()):
            nn.init.zeros_(m.bias)
        for m in self._zero_init():
            nn.init.zeros_(m.weight)

    def _zero_init(self) -> list[nn.Linear]:
        return [*(b.modulation for b in self.blocks), self.final_modulation, self.patch_out]

    # ------------------------------------------------------------------ layout
    def _rope_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) for [condition grid, target grid], each (n_c + n_p, head_dim / 2)."""
        head_dim = self.config.dim // self.config.heads
        frame = max(self.condition.grid, self.grid)
        cos, sin = rope_2d(frame, frame, head_dim)

        def rows(n: int) -> torch.Tensor:  # indices into the frame table of an n x n grid
            pos = torch.arange(n) * frame // n
            return (pos[:, None] * frame + pos[None, :]).flatten()

        index = torch.cat([rows(self.condition.grid), rows(self.grid)])
        return cos[index], sin[index]

    @property
    def target_shape(self) -> tuple[int, int, int]:
        """(C, S, S) of x0: (D, h, w) of the codec grid, or (3, H, W) for pixels."""
        return (self.channels, self.side, self.side)

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, n_p, C p p)
        p = self.config.patch_size
        b, c = x.shape[:2]
        x = x.view(b, c, self.grid, p, self.grid, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, self.grid * self.grid, c * p * p)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_p, C p p) -> (B, C, S, S)
        p, g, c = self.config.patch_size, self.grid, self.channels
        x = x.view(x.shape[0], g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(x.shape[0], c, self.side, self.side)

    # ------------------------------------------------------------------ network
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x_t (B, C, S, S), t (B,) in [0, 1], cond (B, n_c, dim) -> velocity (B, C, S, S)."""
        B, n_p = x_t.shape[0], self.grid * self.grid
        temb = self.time_mlp(timestep_embedding(t, self.config.dim).to(self.patch_in.weight.dtype))
        h = torch.cat(
            [
                cond.to(temb.dtype) + self.type_embed[0],  # (B, n_c, dim)
                self.patch_in(self._patchify(x_t).to(temb.dtype)) + self.type_embed[1] + self._under(cond),
            ],
            dim=1,
        )
        rope = (self.rope_cos, self.rope_sin)
        for block in self.blocks:
            h = block(h, temb, rope)
        shift, scale = self.final_modulation(F.silu(temb))[:, None].chunk(2, dim=-1)
        h = self.norm(h[:, -n_p:]) * (1 + scale) + shift
        return self._unpatchify(self.patch_out(h).view(B, n_p, -1))  # (B, C, S, S)

    def _under(self, cond: torch.Tensor) -> torch.Tensor:
        """Condition tokens (B, n_c, dim) resampled onto the target patch grid: (B, n_p, dim)."""
        gc, g = self.condition.grid, self.grid
        if gc == g:
            return cond
        c = cond.transpose(1, 2).reshape(cond.shape[0], -1, gc, gc)
        c = F.adaptive_avg_pool2d(c, g) if gc > g else F.interpolate(c, size=(g, g), mode="bilinear")
        return c.flatten(2).transpose(1, 2)

    # ------------------------------------------------------------------ targets
    @torch.no_grad()
    def encode_target(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> x0 (B, C, S, S) in the diffusion space, fp32."""
        if self.codec is None:
            return images.float()
        return self.codec.encode(images)[0].float() * self.latent_scale

    @torch.no_grad()
    def target_from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Stored pixel-VQ ids (B, h, w) -> x0 (B, D, h, w), fp32: `encode_target` of the image they
        came from (space=latent; space=pixel diffuses pixels, which ids do not hold)."""
        if self.codec is None:
            raise DialectError("difdtok: space=pixel diffuses pixels; train it on images, not stored ids")
        return self.codec.quantizer.lookup(ids).permute(0, 3, 1, 2).float() * self.latent_scale

    @torch.no_grad()
    def decode_target(self, x0: torch.Tensor, snap: bool | None = None) -> torch.Tensor:
        """x0 (B, C, S, S) in the diffusion space -> images (B, 3, H, W) in [-1, 1]."""
        if self.codec is None:
            return x0.clamp(-1, 1)
        z = x0.float() / self.latent_scale
        if self.config.snap if snap is None else snap:
            z = self.codec.quantizer(z.permute(0, 2, 3, 1))[0].permute(0, 3, 1, 2)
        return self.codec.decode(z.to(next(self.codec.decoder.parameters()).dtype))

    def sample_t(
        self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n training timesteps, logit-normal: sigmoid(N(t_mean, t_std)), shape (n,)."""
        z = torch.randn(n, device=device, generator=generator)
        return torch.sigmoid(self.config.t_mean + self.config.t_std * z)

    # ------------------------------------------------------------------ training
    def training_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Images are encoded here; a pretokenized batch (its stored pixel-VQ and TA-Tok ids,
        `dialect.data.tokens`; space=latent only) is read as it is."""
        if PIXEL_KEY in batch:
            x0 = self.target_from_ids(batch[PIXEL_KEY])
            cond, scale = self.condition.stored_condition(batch)
            images = self.codec.decode_ids(batch[PIXEL_KEY]) if self.config.fg_weight else None
        else:
            images = batch["image"]
            x0 = self.encode_target(images)
            cond, scale = self.condition.training_condition(images)
        t = self.sample_t(x0.shape[0], x0.device)
        noise = torch.randn_like(x0)
        tt = t[:, None, None, None]
        x_t = (1 - tt) * x0 + tt * noise
        err = (self(x_t, t, cond).float() - (noise - x0)).pow(2)
        if self.config.fg_weight:
            weight = 1.0 + self.config.fg_weight * foreground_mask(images.float(), self.side)
            loss = (err * weight).mean() / weight.mean()
        else:
            loss = err.mean()
        return {"loss": loss, "scale": torch.tensor(float(scale))}

    def train(self, mode: bool = True) -> DifDTok:
        super().train(mode)
        if self.codec is not None:
            self.codec.eval()  # frozen: always in inference mode
        return self

    def load_submodels(self, tatok: TATok, codec: PixelVQ | None) -> None:
        """Copy trained TA-Tok / pixel-VQ weights into the frozen sub-models (configs must match;
        a codec's discriminator, a training-only part, is not carried)."""
        self.condition.load_tatok(tatok)
        if self.codec is not None:
            if codec is None:
                raise DialectError("difdtok: space=latent needs a trained pixel VQ")
            self.codec.load_state_dict(codec.inference_state_dict())

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def sample(
        self,
        features: torch.Tensor,
        scale: int,
        steps: int | None = None,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decoded TA-Tok features (B, h_c * w_c, C) from scale `scale` -> x0 (B, C, S, S) in the
        diffusion space. `generator` (on the model's device) seeds the starting noise."""
        cond = self.condition.project(features, scale)
        B = cond.shape[0]
        noise = torch.randn((B, *self.target_shape), device=cond.device, generator=generator)
        return euler_sample(
            self,
            noise,
            cond,
            self.condition.null(B).to(cond.dtype),
            self.config.sample_steps if steps is None else steps,
            self.config.guidance if guidance is None else guidance,
        )

    @torch.no_grad()
    def decode_ids(
        self,
        ids: torch.Tensor,
        scale: int,
        steps: int | None = None,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """TA-Tok ids (B, n_scale) at `scale` -> images (B, 3, H, W) in [-1, 1].

        Randomness: `generator` if given, else a fresh one seeded with `seed` (else the global RNG).
        Defaults: `config.sample_steps` Euler steps, `config.guidance`."""
        generator = resolve_generator(generator, seed, self.patch_in.weight.device)
        features = self.condition.features(ids, scale)
        return self.decode_target(self.sample(features, scale, steps, guidance, generator))

    @torch.no_grad()
    def reconstruct(
        self,
        images: torch.Tensor,
        scale: int,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Images -> TA-Tok ids at `scale` -> Dif-DTok images (the de-tokenizer's round trip)."""
        ids = self.condition.encode_ids(images, scale)
        return self.decode_ids(ids, scale, steps=steps, guidance=guidance, seed=seed)

    @torch.no_grad()
    def training_samples(self, batch: dict) -> torch.Tensor:
        """One row per image: the input, then its reconstruction from the ids of every scale
        (fixed seed 0): ((1 + S) * (1 + S), 3, H, W) in [-1, 1], a square grid."""
        n = self.condition.num_scales + 1
        if PIXEL_KEY in batch:  # pretokenized: the input row is the pixel VQ's decoding of the ids
            x = self.codec.decode_ids(batch[PIXEL_KEY][:n])
            recon = [self.decode_ids(batch[ids_key(s)][:n], s, seed=0) for s in range(n - 1)]
        else:
            x = batch["image"][:n]
            recon = [self.reconstruct(x, s, seed=0) for s in range(n - 1)]
        rows = [x] + [r.to(x.dtype) for r in recon]
        return torch.stack(rows, dim=1).flatten(0, 1)
