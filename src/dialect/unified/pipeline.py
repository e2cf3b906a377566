"""`Dialect`: the user-facing pipeline around a trained Tar and its de-tokenizers.

    d = Dialect.from_pretrained("path/to/model")     # or Dialect.from_pretrained() for the shipped one
    d.caption(image)                                 # -> "a small red circle on the left ..."
    d.ask(image, "what color is the square?")        # -> "blue"
    d.generate("a blue square above a red circle", n=4, scale=0, seed=0)  # -> images
    d.edit(image, "make the circle green")           # -> image
    d.variation(image)                               # -> image

A model folder holds `tar/` (the LM, its vocabulary and frozen TA-Tok) and one folder per
de-tokenizer it ships (`ar/`, `diffusion/`), plus a model card. Images go in as file paths, PIL
images, uint8 arrays (H, W, 3) or tensors (3, H, W) / (B, 3, H, W) in [-1, 1]; images come out as
tensors (B, 3, H, W) in [-1, 1] (`dialect.core.images.to_uint8` / `save_grid` to write them).
Sampling defaults are the paper's (T2I: temperature 1.0, top-p 0.95, top-k 1200, no guidance in
the LM; text: greedy), all overridable per call. Images are painted by `decoder` ("ar" |
"diffusion"); None (the default) picks `Dialect.default_decoder`: Dif-DTok when the folder ships
it, else AR-DTok.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from dialect.core.errors import DialectError
from dialect.data.user_image import load_image_tensor
from dialect.detok import DECODERS
from dialect.detok.condition import resolve_generator
from dialect.lm import SamplingConfig
from dialect.unified.model import Tar
from dialect.unified.tasks import REQUESTS, final_answer, image_prompt

MAX_PROMPT_CHARS = 1000
MAX_IMAGES = 64
DEFAULT_MODEL = "default"  # the model shipped inside the package: dialect/models/default
# the de-tokenizer used when none is named, first shipped wins. Measured on the shipped model
# (src/dialect/models/default/README.md): GenEval-mini 0.100 with Dif-DTok vs 0.042 with AR-DTok,
# and 24% vs 10% of held-out scenes redrawn exactly (experiments/results/detok_fidelity.md);
# AR-DTok is 3x faster (0.09 vs 0.29 s per image) and stays one argument away.
DECODER_PREFERENCE = ("diffusion", "ar")


def default_model_path() -> Path:
    """The shipped tiny model (`src/dialect/models/default`)."""
    return Path(str(resources.files("dialect") / "models" / DEFAULT_MODEL))


def _check_text(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DialectError(f"the {what} is empty: give some text")
    if len(text) > MAX_PROMPT_CHARS:
        raise DialectError(f"the {what} has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
    return text.strip()


class Dialect:
    """Tar + de-tokenizers behind caption / ask / generate / edit / variation."""

    def __init__(self, tar: Tar, decoders: dict[str, Any], path: str = "") -> None:
        self.tar = tar.eval()
        self.decoders = {k: d.eval() for k, d in decoders.items()}
        self.path = path
        mine = tar.tatok.state_dict()
        for kind, dec in self.decoders.items():
            theirs = dec.condition.tatok.state_dict()
            same = mine.keys() == theirs.keys() and all(
                mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k].to(mine[k])) for k in mine
            )
            if not same:
                raise DialectError(f"the {kind} de-tokenizer reads a different TA-Tok than the LM")

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "cpu") -> Dialect:
        """A model folder with `tar/` and de-tokenizer folders (`ar/`, `diffusion/`); None -> the
        shipped default model."""
        root = Path(path) if path else default_model_path()
        if not (root / "tar" / "config.json").is_file():
            hint = " (the shipped model is missing: reinstall, or train one with `dialect train all`)"
            raise DialectError(
                f"{root} is not a Dialect model folder: no tar/config.json" + ("" if path else hint)
            )
        tar = Tar.from_pretrained(root / "tar", map_location=device)
        decoders = {
            kind: cls_.from_pretrained(root / kind, map_location=device)
            for kind, cls_ in DECODERS.items()
            if (root / kind / "config.json").is_file()
        }
        if not decoders:
            raise DialectError(f"{root} holds no de-tokenizer folder ({', '.join(DECODERS)})")
        return cls(tar, decoders, str(root))

    def compile_decoding(self, enabled: bool = True, ahead_of_time: bool = False) -> Dialect:
        """Decode through compiled one-token steps (`DecoderLM.compile_decoding`): Tar's LM and
        AR-DTok's. Every (batch, cache capacity) compiles once, in seconds; after that, on the
        shipped model, AR-DTok's `generate` ran 2.60-4.43x and `caption` 1.77-2.26x faster at batch
        1 over three runs, with the same tokens (`benchmarks/bench_latency.py`, BENCHMARKS.md). So it
        pays for a server or a benchmark run, not a single call. `ahead_of_time`: the steps built
        by AOTInductor instead (`dialect.lm.aot`: one C++ build per LM and batch size, 10-30 s, for
        every capacity; no Python around the kernels): AR-DTok's `generate` 1.21-1.60x and
        `caption` 1.39x faster again at batch 1 (one run). A Hugging Face backbone (`model.hf_lm`)
        keeps its eager decoding."""
        lms = [getattr(self.tar, "lm", None)] + [getattr(d, "lm", None) for d in self.decoders.values()]
        for lm in lms:
            if hasattr(lm, "compile_decoding"):
                lm.compile_decoding(enabled, ahead_of_time=ahead_of_time)
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def image_size(self) -> int:
        return self.tar.config.tatok.teacher.image_size

    def _images(self, images: Any) -> torch.Tensor:
        if isinstance(images, (list, tuple)):
            if not images:
                raise DialectError("no images given")
            return torch.cat([load_image_tensor(im, self.image_size) for im in images])
        return load_image_tensor(images, self.image_size)

    @property
    def default_decoder(self) -> str:
        """The de-tokenizer used when a call names none: the first of `DECODER_PREFERENCE` shipped."""
        return next(k for k in (*DECODER_PREFERENCE, *self.decoders) if k in self.decoders)

    def resolve_decoder(self, decoder: str | None) -> str:
        """`decoder`, or the default one for None; a kind this model lacks -> DialectError."""
        decoder = self.default_decoder if decoder is None else decoder
        if decoder not in self.decoders:
            shipped = ", ".join(self.decoders)
            raise DialectError(f"this model has no '{decoder}' de-tokenizer; it ships {shipped}")
        return decoder

    def image_sampling(self, temperature, top_k, top_p, cfg_scale=None) -> SamplingConfig:
        """The LM's image-token sampling (None = the paper's value); a bad value -> DialectError."""
        try:
            return SamplingConfig(
                temperature=1.0 if temperature is None else temperature,
                top_k=1200 if top_k is None else top_k,
                top_p=0.95 if top_p is None else top_p,
                cfg_scale=1.0 if cfg_scale is None else cfg_scale,
            )
        except ValueError as exc:
            raise DialectError(str(exc)) from None

    def decode(
        self, codes: torch.Tensor, scale: int, decoder: str | None = None, seed: int | None = 0, **sampling
    ) -> torch.Tensor:
        """TA-Tok codes (B, n_scale) -> images (B, 3, H, W) through a de-tokenizer (None: the default)."""
        dec = self.decoders[self.resolve_decoder(decoder)]
        return dec.decode_ids(codes, scale, seed=seed, **sampling).float().clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(
        self, images: Any, scale: int = 0, decoder: str | None = None, seed: int | None = 0, **sampling
    ) -> torch.Tensor:
        """Images -> Tar's TA-Tok codes at `scale` -> painted back by the de-tokenizer, the path an
        LM-written image takes (B, 3, H, W). On images that meet a prompt or an edit's target, it
        is what a perfect LM would draw: the ceiling of GenEval-mini and Edit-mini (`--oracle`)."""
        codes = self.tar.encode_images(self._images(images), scale)
        return self.decode(codes, scale, decoder, seed, **sampling)

    # ------------------------------------------------------------------ understanding
    @property
    def reply_tokens(self) -> int:
        """Room for a text reply: 48 tokens, 96 for a model that describes the scene before it
        answers (about 55 tokens with four objects; `model.tasks.vqa_reason`)."""
        return 96 if self.tar.config.tasks.vqa_reason else 48

    @torch.no_grad()
    def ask(
        self, images: Any, questions: str | Sequence[str], max_new_tokens: int | None = None,
        explain: bool = False,
    ) -> list[str]:  # fmt: skip
        """Answer each question about its image (one question for all images, or one per image).
        A model trained to describe, then answer (`model.tasks.vqa_reason`) writes the scene out
        before its answer; `explain=True` returns that whole reply, the default the answer alone.
        `max_new_tokens`: None = `reply_tokens`."""
        x = self._images(images)
        qs = [questions] * len(x) if isinstance(questions, str) else list(questions)
        if len(qs) != len(x):
            raise DialectError(f"{len(qs)} questions for {len(x)} images")
        qs = [_check_text(q, "question") for q in qs]
        spans = self.tar.image_spans(x)
        first = self.tar.config.question_first
        convs = [[("user", image_prompt(span, q, first))] for span, q in zip(spans, qs, strict=True)]
        replies = self.tar.generate_text(convs, max_new_tokens or self.reply_tokens)
        return replies if explain else [final_answer(r) for r in replies]

    def caption(self, images: Any, max_new_tokens: int = 48) -> list[str]:
        """One caption per image."""
        return self.ask(images, REQUESTS["caption"][0], max_new_tokens)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate_codes(
        self, prompts: str | Sequence[str], n: int = 1, scale: int = 0, seed: int | None = 0,
        temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
        cfg_scale: float | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """TA-Tok codes (len(prompts) * n, n_scale): n samples per prompt, prompt-major.
        `cfg_scale`: classifier-free guidance inside the LM (None / 1 = off, the paper's
        sampling; needs a model trained with prompt dropout, see `Tar.generate_codes`)."""
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not texts or not 1 <= n * len(texts) <= MAX_IMAGES:
            raise DialectError(f"ask for 1..{MAX_IMAGES} images in all, got {n} x {len(texts)} prompts")
        texts = [_check_text(t, "prompt") for t in texts for _ in range(n)]
        gen = resolve_generator(None, seed, torch.device("cpu"))
        convs = [[("user", [t])] for t in texts]
        sampling = self.image_sampling(temperature, top_k, top_p, cfg_scale)
        return self.tar.generate_codes(convs, scale, sampling, gen)

    def generate(
        self, prompts: str | Sequence[str], n: int = 1, scale: int = 0, decoder: str | None = None,
        seed: int | None = 0, temperature: float | None = None, top_k: int | None = None,
        top_p: float | None = None, cfg_scale: float | None = None, **decoder_sampling,
    ) -> torch.Tensor:  # fmt: skip
        """Text -> images (len(prompts) * n, 3, H, W): Tar writes TA-Tok codes (`cfg_scale`: LM
        guidance, see `generate_codes`), the de-tokenizer (`decoder` "ar" | "diffusion", None =
        `default_decoder`; `decoder_sampling` e.g. guidance=...) paints them."""
        decoder = self.resolve_decoder(decoder)
        codes = self.generate_codes(prompts, n, scale, seed, temperature, top_k, top_p, cfg_scale)
        return self.decode(codes, scale, decoder, seed, **decoder_sampling)

    @torch.no_grad()
    def edit(
        self, images: Any, instructions: str | Sequence[str], scale: int = 0, decoder: str | None = None,
        seed: int | None = 0, temperature: float | None = None, top_k: int | None = None,
        top_p: float | None = None, cfg_scale: float | None = None, **decoder_sampling,
    ) -> torch.Tensor:  # fmt: skip
        """Image + instruction -> edited image (TI2I); one instruction for all, or one per image.
        `cfg_scale`: LM guidance (None / 1 = off) on the instruction for a model trained with
        `tasks.ti2i_text_drop` > 0, else on the input image (needs `tasks.ti2i_image_drop` > 0;
        `TaskConfig.edit_null`, `Tar.generate_codes`)."""
        x = self._images(images)
        ins = [instructions] * len(x) if isinstance(instructions, str) else list(instructions)
        if len(ins) != len(x):
            raise DialectError(f"{len(ins)} instructions for {len(x)} images")
        ins = [_check_text(t, "instruction") for t in ins]
        decoder = self.resolve_decoder(decoder)
        gen = resolve_generator(None, seed, torch.device("cpu"))
        spans, last = self.tar.image_spans(x), self.tar.config.image_last
        convs = [[("user", image_prompt(span, t, last))] for span, t in zip(spans, ins, strict=True)]
        sampling = self.image_sampling(temperature, top_k, top_p, cfg_scale)
        codes = self.tar.generate_codes(convs, scale, sampling, gen, null=self.tar.config.tasks.edit_null())
        return self.decode(codes, scale, decoder, seed, **decoder_sampling)

    def variation(self, images: Any, **kwargs) -> torch.Tensor:
        """Image -> a variation of it (I2I): the same objects, freshly composed."""
        x = self._images(images)
        return self.edit(x, REQUESTS["variation"][0], **kwargs)
