"""Size a paper-scale run without weights: `dialect dryrun gpu/tatok` (or `gpu/lm`).

A dry-run preset (`configs/gpu/*.yaml`, a :class:`DryRunConfig`) writes out the architectures of
the local Hugging Face folders a real run would read (the teacher tower's and the LLM's
`config.json` values) and the step shape (GPUs, micro-batch, accumulation, sequence length). The
models are built on the meta device (`torch.device("meta")`: shapes only, no memory, nothing read
or downloaded) and the report gives, per part, total / trainable parameters and buffer elements,
the per-GPU memory of weights, grads and AdamW moments, an activation estimate per micro-step
with and without per-layer activation checkpointing (formulas in :mod:`dialect.train.memory`),
and tokens per optimizer step.

- `recipe: tatok` builds our :class:`~dialect.tokenizers.tatok.TATok` itself at scale: the HF
  teacher from `teacher` (frozen), the text-aligned codebook with E = K rows of width
  `lm.hidden_size` (a frozen buffer; W trainable), the adapter and the feature decoder.
- `recipe: lm` builds the paper's Tar: the causal LM of `lm` (e.g. Qwen2.5-1.5B) with its table
  grown by the K image tokens and 2 + num_scales markers (`<im_start>`, `<im_end>`, `<S_k>`), plus
  the frozen TA-Tok that turns training images into ids (absent with pretokenized ids).
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dialect.core.errors import DialectError
from dialect.tokenizers.tatok import TATok, TATokConfig
from dialect.train import memory as M

RECIPES = ("tatok", "lm")


@dataclass
class StepConfig:
    gpus: int = 8  # data-parallel ranks (DDP: every GPU holds a full replica)
    micro_batch: int = 8  # samples per GPU per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    seq_len: int = 2048  # lm: tokens per training sequence (tatok: the teacher grid decides)


@dataclass
class DryRunConfig:
    recipe: str = "tatok"  # what to size: tatok | lm
    teacher: dict[str, Any] = field(default_factory=dict)  # teacher tower's HF config: model_type + values
    lm: dict[str, Any] = field(default_factory=dict)  # the LLM's HF config: model_type + values
    tatok: TATokConfig = field(default_factory=TATokConfig)  # hf_teacher / vq.source: taken from above
    step: StepConfig = field(default_factory=StepConfig)
    images_per_sequence: int = 2  # lm: images the frozen TA-Tok encodes per sequence (i2i / ti2i: 2)


@dataclass
class Part:
    name: str
    count: M.ParamCount
    note: str = ""


@dataclass
class DryRunReport:
    title: str
    parts: list[Part]
    state: dict[str, int]  # weights / grads / adamw bytes per GPU
    activations: dict[str, int]  # "no checkpointing" / "checkpointing" bytes per GPU per micro-step
    transient: dict[str, int]  # working sets freed before backward (not in the totals)
    tokens: dict[str, int]  # per optimizer step, all GPUs
    notes: list[str] = field(default_factory=list)
    gpus: int = 1  # data-parallel ranks, for the FSDP rows

    def total(self) -> M.ParamCount:
        return M.ParamCount(
            *(sum(getattr(p.count, f) for p in self.parts) for f in M.ParamCount.__dataclass_fields__)
        )

    def per_gpu(self, checkpointing: bool, fsdp: bool = False) -> int:
        """Bytes per GPU. Under `train.parallel=fsdp` the trainable weights, their grads and AdamW
        moments are split over the GPUs; frozen weights and buffers stay whole on each (as
        `dialect.train.fsdp` shards them); the transient gather of one layer is not counted."""
        key = "checkpointing" if checkpointing else "no checkpointing"
        state = sum(self.state.values())
        if fsdp:
            t = self.total()
            whole = M.WEIGHT_BYTES * (t.total - t.trainable + t.buffers)
            state = (state - whole) // self.gpus + whole
        return state + self.activations[key]

    def format(self) -> str:
        lines = [self.title, "", f"{'part':<28}{'params':>16}{'trainable':>16}{'buffers':>14}"]
        for p in [*self.parts, Part("total", self.total())]:
            c = p.count
            lines.append(f"{p.name:<28}{c.total:>16,}{c.trainable:>16,}{c.buffers:>14,}  {p.note}".rstrip())
        rows = [*self.state.items()]
        rows += [(f"activations, {k}", v) for k, v in self.activations.items()]
        rows += [(f"transient, {k}", v) for k, v in self.transient.items()]
        rows += [(f"total {w} checkpointing", self.per_gpu(w == "with")) for w in ("without", "with")]
        rows += [
            (f"total {w} checkpointing, FSDP over {self.gpus}", self.per_gpu(w == "with", fsdp=True))
            for w in ("without", "with")
        ]
        lines += ["", "memory per GPU (DDP replica unless FSDP is named; fp32 weights, bf16 autocast):"]
        lines += [f"  {k:<42}{M.gib(v):>14}" for k, v in rows]
        lines += ["", "per optimizer step (all GPUs):"]
        lines += [f"  {k:<42}{v:>14,}" for k, v in self.tokens.items()]
        return "\n".join(lines + [f"note: {n}" for n in self.notes]) + "\n"


# ---------------------------------------------------------------------- building on meta
def hf_config(values: dict[str, Any], what: str):
    """A transformers config object from `model_type` + hyperparameters (never downloaded)."""
    from transformers import AutoConfig

    values = dict(values)
    model_type = values.pop("model_type", "")
    if not model_type:
        raise DialectError(
            f"dry run: the {what} architecture needs a model_type (e.g. siglip_vision_model, qwen2)"
        )
    try:
        return AutoConfig.for_model(model_type, **values)
    except ValueError as exc:
        raise DialectError(f"dry run: bad {what} architecture: {exc}") from None


def build_tatok_meta(cfg: DryRunConfig) -> TATok:
    """Our TA-Tok at the preset's scale on the meta device. The teacher is built from its config
    (a folder holding only config.json, which HFVisionTower builds without weights); the codebook
    gets K placeholder tokens so no embedding table is read (E stays an empty meta buffer)."""
    tcfg = copy.deepcopy(cfg.tatok)
    embed_dim = int(hf_config(cfg.lm, "lm").hidden_size)
    tcfg.vq.tokens, tcfg.vq.embed_dim = [""] * tcfg.vq.num_codes, embed_dim
    with tempfile.TemporaryDirectory() as folder:
        hf_config(cfg.teacher, "teacher").save_pretrained(folder)
        tcfg.hf_teacher = folder
        with torch.device("meta"):
            return TATok(tcfg)


def build_lm_meta(cfg: DryRunConfig) -> nn.Module:
    """The Tar LM on the meta device: `cfg.lm`'s causal LM, table grown by K + 2 + num_scales rows."""
    from transformers import AutoModelForCausalLM

    config = hf_config(cfg.lm, "lm")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        model.resize_token_embeddings(tar_vocab_size(cfg), mean_resizing=False)
    return model


def tar_vocab_size(cfg: DryRunConfig) -> int:
    """LLM table rows + K image tokens + <im_start>, <im_end> and one <S_k> per scale (the paper)."""
    return int(hf_config(cfg.lm, "lm").vocab_size) + cfg.tatok.vq.num_codes + 2 + cfg.tatok.num_scales


# ---------------------------------------------------------------------- layer shapes
def hf_layer(config) -> M.LayerShape:
    """The layer shape of a HF transformer config (GQA when num_key_value_heads is set)."""
    h, heads = int(config.hidden_size), int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    gated = "gelu" not in str(getattr(config, "hidden_act", "silu"))
    return M.LayerShape(h, 2 * kv_heads * (h // heads), int(config.intermediate_size), gated)


def _teacher_layer(model: TATok) -> int:
    """Bytes per token of one layer of the TA-Tok's HF teacher."""
    return hf_layer(model.teacher.model.config).bytes_per_token()


def _decoder_layer(model: TATok) -> M.LayerShape:
    d = model.config.decoder_dim
    return M.LayerShape(d, 2 * d, model.decoder.blocks[0].mlp.w2.in_features, gated=True)


# ---------------------------------------------------------------------- reports
def _activations(fixed: int, layer: M.LayerShape, depth: int, tokens: int) -> dict[str, int]:
    return {
        name: fixed + M.stack_activation_bytes(layer, depth, tokens, ckpt)
        for name, ckpt in (("no checkpointing", False), ("checkpointing", True))
    }


def _check(cfg: DryRunConfig) -> None:
    if cfg.recipe not in RECIPES:
        raise DialectError(f"dry run: recipe must be one of {', '.join(RECIPES)}, got {cfg.recipe!r}")
    s = cfg.step
    if min(s.gpus, s.micro_batch, s.grad_accum, s.seq_len) < 1:
        raise DialectError("dry run: step.gpus, micro_batch, grad_accum and seq_len must be >= 1")
    if not cfg.lm or (cfg.recipe == "tatok" and not cfg.teacher):
        raise DialectError("dry run: the preset must give the lm architecture (and the teacher's for tatok)")


def tatok_report(cfg: DryRunConfig) -> DryRunReport:
    """Per micro-step activations, b images of G = grid^2 teacher tokens, teacher width c, code
    width D, decoder width d (bytes per grid token beyond the decoder layers): adapter input and
    tanh output and to_code input in bf16 (6c), the quantizer's fp32 z, unit z and codes (12D),
    from_code's bf16 input (2D), to_feature's input (2d), the fp32 prediction and target (8c)."""
    model = build_tatok_meta(cfg)
    teacher = hf_config(cfg.teacher, "teacher")
    s, side = cfg.step, model.grid
    grid_tokens = s.micro_batch * side * side
    c, d, D = model.teacher.feature_dim, model.config.decoder_dim, model.config.vq.dim
    fixed = grid_tokens * (14 * c + 14 * D + 2 * d)
    parts = [Part(k, v) for k, v in M.count_by_prefix(model).items()]
    parts[0].note = "frozen (no_grad)"
    total = M.count_params(model)
    images = s.gpus * s.micro_batch * s.grad_accum
    tokens = {"images": images, "teacher grid tokens": images * side * side}
    for k, pool in enumerate(model.config.pool_scales):
        tokens[f"code tokens, scale {k} (s={pool}, {model.num_tokens(k)}/img)"] = images * model.num_tokens(k)
    chunk = model.config.vq.chunk_size or grid_tokens
    return DryRunReport(
        title=(
            f"TA-Tok dry run: teacher {teacher.model_type} ({side}x{side} grid x {c}), K = "
            f"{model.config.vq.num_codes:,} codes x D = {D}, scales {model.config.pool_scales} -> "
            f"{'/'.join(str(model.num_tokens(k)) for k in range(model.config.num_scales))} tokens"
        ),
        parts=parts,
        state=M.state_bytes(total),
        activations=_activations(fixed, _decoder_layer(model), model.config.decoder_depth, grid_tokens),
        transient={
            "teacher forward (1 layer)": grid_tokens * _teacher_layer(model),
            "VQ similarity block (fp32)": min(chunk, grid_tokens) * model.config.vq.num_codes * 4,
        },
        tokens=tokens,
        notes=[f"{s.gpus} GPUs x {s.micro_batch} images x {s.grad_accum} accumulation"],
        gpus=s.gpus,
    )


def lm_report(cfg: DryRunConfig) -> DryRunReport:
    """Per micro-step activations: T = micro_batch x seq_len tokens through every LM layer, plus
    the output head over the grown vocabulary (see :mod:`dialect.train.memory`)."""
    lm = build_lm_meta(cfg)
    tatok = build_tatok_meta(cfg)
    config = hf_config(cfg.lm, "lm")
    s = cfg.step
    tokens = s.micro_batch * s.seq_len
    vocab = tar_vocab_size(cfg)
    parts = [Part(f"lm.{k}", v) for k, v in M.count_by_prefix(lm, depth=2).items()]
    tied = getattr(config, "tie_word_embeddings", False)
    for p in parts:
        if p.name.endswith("embed_tokens"):
            p.note = f"{vocab:,} rows" + (", tied to lm_head" if tied else "")
    frozen = M.count_params(tatok)
    parts.append(
        Part(
            "tatok", M.ParamCount(frozen.total, 0, frozen.buffers), "frozen; not needed with pretokenized ids"
        )
    )
    state = M.state_bytes(M.count_params(lm))
    state["weights"] += M.WEIGHT_BYTES * (frozen.total + frozen.buffers)
    fixed = M.logits_bytes(tokens, vocab)
    teacher_tokens = s.micro_batch * cfg.images_per_sequence * tatok.grid**2
    return DryRunReport(
        title=(
            f"Tar LM dry run: {config.model_type} ({config.num_hidden_layers} layers, hidden "
            f"{config.hidden_size}, {config.num_attention_heads} heads / "
            f"{getattr(config, 'num_key_value_heads', config.num_attention_heads)} KV heads, MLP "
            f"{config.intermediate_size}), vocabulary {config.vocab_size:,} + "
            f"{cfg.tatok.vq.num_codes:,} image tokens + {2 + cfg.tatok.num_scales} markers = {vocab:,}"
        ),
        parts=parts,
        state=state,
        activations=_activations(fixed, hf_layer(config), int(config.num_hidden_layers), tokens),
        transient={"TA-Tok teacher forward (1 layer)": teacher_tokens * _teacher_layer(tatok)},
        tokens={
            "sequences": s.gpus * s.micro_batch * s.grad_accum,
            "tokens": s.gpus * s.micro_batch * s.grad_accum * s.seq_len,
        },
        notes=[
            f"{s.gpus} GPUs x {s.micro_batch} sequences of {s.seq_len} tokens x {s.grad_accum} accumulation",
            f"activations include the output head over {vocab:,} entries: {M.gib(fixed)}",
        ],
        gpus=s.gpus,
    )


def dry_run(cfg: DryRunConfig) -> DryRunReport:
    """Build the preset's models on the meta device and size one training step."""
    _check(cfg)
    return tatok_report(cfg) if cfg.recipe == "tatok" else lm_report(cfg)
