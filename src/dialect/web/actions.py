"""What the web demo does, without the web: plain Python around one `Dialect` pipeline.

The Gradio layer (`dialect.web.app`) only lays out widgets and forwards their values here, so
every panel's behaviour is testable without a browser or Gradio. Images travel between calls as
`LoadedImage` (the tensor the model reads plus a preview to show). Anything a user can get wrong
raises `DialectError` with one readable sentence, from the pipeline's own checks (file type and
pixel count in `load_image_tensor`, text length in the pipeline methods, the image count in
`generate_codes`, the LM's own sampling checks); the app shows that sentence in the UI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dialect.core.errors import DialectError
from dialect.core.images import to_uint8
from dialect.data.user_image import load_image_tensor
from dialect.detok import DECODERS
from dialect.lm import SamplingConfig
from dialect.tokenizers.tatok import token_string
from dialect.unified.chat import Exchange, chat
from dialect.unified.pipeline import Dialect, default_model_path
from dialect.unified.tasks import REQUESTS
from dialect.web.overlay import token_overlay
from dialect.world import WorldConfig, make_example

PREVIEW = 256  # px: model-resolution images are shown scaled up (nearest) to this side
CAPTION_REQUEST = REQUESTS["caption"][0]  # what the "Caption" button sends: the pipeline's own request
SHAPEWORLD_SEED = 7  # scene k of the "draw a ShapeWorld scene" button is make_example(k, this seed)

Progress = Callable[[float, str], None]
SCORES = {  # the model card's metrics.json: key -> (label, path to the number), shown in the header
    "vqa/train": ("VQA-mini", ("overall", "value")),
    "caption/train": ("caption attribute F1", ("f1", "value")),
    "geneval/all": ("GenEval-mini", ("overall",)),
    "edit/train": ("Edit-mini", ("overall", "value")),
}


@dataclass(frozen=True, eq=False)  # identity equality: tensors cannot be compared with == (Gradio may)
class LoadedImage:
    """An input image as the model reads it: tensor (1, 3, S, S) in [-1, 1]; preview uint8
    (PREVIEW, PREVIEW, 3); note says where it came from."""

    tensor: torch.Tensor
    preview: np.ndarray
    note: str


@dataclass(frozen=True)
class Sampling:
    """The Generate / Edit panels' controls. None = the pipeline's default (LM: temperature 1.0,
    top-k 1200, top-p 0.95; de-tokenizer: its own guidance); seed None = unseeded."""

    scale: int = 0
    decoder: str | None = None  # None: the model's default de-tokenizer
    seed: int | None = 0
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    guidance: float | None = None  # the de-tokenizer's
    lm_guidance: float | None = None  # the LM's (`cfg_scale`): on the prompt, or the edit's input image

    def kwargs(self) -> dict:
        kw = {"scale": self.scale, "decoder": self.decoder, "seed": self.seed}
        kw.update(
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, cfg_scale=self.lm_guidance
        )
        if self.guidance is not None:
            kw["guidance"] = self.guidance
        return kw


def show(image: torch.Tensor | np.ndarray, size: int = PREVIEW) -> np.ndarray:
    """One image (3, H, W) in [-1, 1] or uint8 (H, W, 3) -> uint8 (size, size, 3), nearest."""
    arr = to_uint8(image) if isinstance(image, torch.Tensor) else image
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.NEAREST))


def _as_int(value, what: str, default: int | None = None) -> int | None:
    """A widget's number (float, int, None or text) -> int; blank -> default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DialectError(f"the {what} must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise DialectError(f"the {what} must be a whole number, got {value}")
    return int(number)


class DemoActions:
    """The four panels' work on one pipeline: chat, generate, edit and the Dialect view."""

    def __init__(self, pipeline: Dialect) -> None:
        self.d = pipeline
        self.world = WorldConfig(size=pipeline.image_size)

    # ------------------------------------------------------------------ model facts
    @property
    def tatok(self):
        return self.d.tar.tatok

    @property
    def scales(self) -> list[int]:
        return list(range(self.tatok.config.num_scales))

    def tokens_at(self, scale: int) -> tuple[int, int]:
        """(token count, grid side) of one image at `scale`; a bad scale -> DialectError."""
        side = self.tatok.scale_side(scale)
        return side * side, side

    def guidance_defaults(self) -> dict[str, float]:
        """Each shipped de-tokenizer's default guidance (what a blank guidance box means)."""
        return {kind: float(dec.config.guidance) for kind, dec in self.d.decoders.items()}

    def describe(self) -> str:
        """One Markdown line about the loaded model."""
        size = self.d.image_size
        grids = ", ".join(
            f"scale {s}: {n} tokens ({side}x{side})" for s in self.scales for n, side in [self.tokens_at(s)]
        )
        if self.d.path and Path(self.d.path).resolve() == default_model_path().resolve():
            name = "the shipped default model (`dialect/models/default`)"
        else:
            name = f"`{self.d.path or '(in memory)'}`"
        return (
            f"Model: {name}, {size}x{size} images; TA-Tok {grids}; "
            f"de-tokenizers: {', '.join(self.d.decoders)}."
        )

    def scores(self) -> str:
        """The model card's headline scores (its metrics.json), so users know what to expect of
        each panel; "" when the model folder has none."""
        path = Path(self.d.path) / "metrics.json" if self.d.path else None
        if path is None or not path.is_file():
            return ""
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            return ""
        parts = []
        for key, (label, route) in SCORES.items():
            value = metrics.get(key)
            for step in route:
                value = value.get(step) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                parts.append(f"{label} {value:.2f}")
        return f"Its scores (model card, `metrics.json`): {', '.join(parts)}." if parts else ""

    # ------------------------------------------------------------------ inputs
    def load_upload(self, path: str | Path | None) -> LoadedImage:
        """An uploaded file -> LoadedImage. The pipeline's checks name the problem (not an image,
        too many pixels, truncated ...); the message names the user's file, not the server's copy."""
        if path is None:
            raise DialectError("no image uploaded: choose an image file")
        name = Path(path).name
        try:
            x = load_image_tensor(Path(path), self.d.image_size)
        except DialectError as exc:
            raise DialectError(str(exc).replace(str(path), name)) from None
        size = self.d.image_size
        return LoadedImage(x, show(x[0]), f"{name}, read at {size}x{size} as the model sees it")

    def shapeworld(self, index) -> LoadedImage:
        """ShapeWorld scene number `index` (a fixed world seed), with its reference caption."""
        k = _as_int(index, "scene number", 0)
        if k < 0:
            raise DialectError(f"the scene number must be >= 0, got {k}")
        ex = make_example(k, SHAPEWORLD_SEED, self.world, with_edits=False)
        x = load_image_tensor(ex["image"], self.d.image_size)
        return LoadedImage(x, show(ex["image"]), f"ShapeWorld scene {k}; reference: {ex['captions'][0]}")

    def _sampling(self, sampling: Sampling) -> Sampling:
        """Check the controls with the LM's own rules before any work starts."""
        self.tokens_at(sampling.scale)
        sampling = replace(sampling, decoder=self.d.resolve_decoder(sampling.decoder))
        self.d.image_sampling(sampling.temperature, sampling.top_k, sampling.top_p, sampling.lm_guidance)
        try:  # the de-tokenizer's guidance, by the same rule as the LM's
            SamplingConfig(cfg_scale=1.0 if sampling.guidance is None else sampling.guidance)
        except ValueError as exc:
            raise DialectError(str(exc)) from None
        return sampling

    # ------------------------------------------------------------------ panels
    def reply(
        self, image: LoadedImage | None, history: Sequence[Exchange], message: str, use_history: bool = False
    ) -> str:
        """The model's answer to `message` about the image; with `use_history` the earlier
        exchanges go into the prompt as chat turns (the shipped model was trained on single-turn
        chats, so by default each answer sees only the image and the new message)."""
        if image is None:
            raise DialectError("no image yet: upload one or draw a ShapeWorld scene")
        return chat(self.d, image.tensor, list(history) if use_history else [], message)

    def generate(
        self, prompt: str, n, sampling: Sampling, progress: Progress | None = None
    ) -> tuple[list[tuple[np.ndarray, str]], str]:
        """Prompt -> ([(image, label)], summary): n images, each labelled with its token count."""
        count = _as_int(n, "number of images")
        if count is None:
            raise DialectError("give the number of images")
        s = self._sampling(sampling)
        ntok, side = self.tokens_at(s.scale)
        report = progress or (lambda frac, desc: None)
        report(0.0, f"the LM writes {count} x {ntok} TA-Tok tokens")
        t0 = time.perf_counter()
        codes = self.d.generate_codes(
            prompt, count, s.scale, s.seed, s.temperature, s.top_k, s.top_p, s.lm_guidance
        )
        t1 = time.perf_counter()
        report(0.5, f"the {s.decoder} de-tokenizer paints {count} image(s)")
        extra = {} if s.guidance is None else {"guidance": s.guidance}
        images = self.d.decode(codes, s.scale, s.decoder, s.seed, **extra)
        t2 = time.perf_counter()
        report(1.0, "done")
        gallery = [(show(img), f"#{i + 1}: {ntok} tokens ({side}x{side})") for i, img in enumerate(images)]
        summary = (
            f"{count} image(s), {ntok} TA-Tok tokens each (scale {s.scale}, {side}x{side}), "
            f"in {t2 - t0:.1f} s: LM {t1 - t0:.1f} s, {s.decoder} de-tokenizer {t2 - t1:.1f} s."
        )
        return gallery, summary

    def edit(self, image: LoadedImage | None, instruction: str, sampling: Sampling) -> tuple[np.ndarray, str]:
        """Image + instruction -> (edited image, summary)."""
        if image is None:
            raise DialectError("no image yet: upload one or draw a ShapeWorld scene")
        s = self._sampling(sampling)
        t0 = time.perf_counter()
        out = self.d.edit(image.tensor, instruction, **s.kwargs())
        ntok, side = self.tokens_at(s.scale)
        seconds = time.perf_counter() - t0
        summary = f"Edited in {seconds:.1f} s; the new image is {ntok} TA-Tok tokens ({side}x{side})."
        return show(out[0]), summary

    @torch.no_grad()
    def dialect_view(
        self, image: LoadedImage | None, scale, seed: int | None = 0
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, str]], str, str]:
        """Image at `scale` -> (overlay of the token grid with each code's word, [(image, label)]
        of the input and its reconstruction through every de-tokenizer, the words row by row,
        summary)."""
        if image is None:
            raise DialectError("no image yet: upload one or draw a ShapeWorld scene")
        k = _as_int(scale, "scale", 0)
        ntok, side = self.tokens_at(k)
        ids = self.tatok.encode_ids(image.tensor, k)
        words = self.tatok.codebook_words(ids[0])
        overlay = token_overlay(to_uint8(image.tensor[0]), words, side)
        recons = [(image.preview, "input")]
        times = []
        for kind in self.d.decoders:
            t0 = time.perf_counter()
            out = self.d.decode(ids, k, kind, seed)
            times.append(f"{kind} {time.perf_counter() - t0:.1f} s")
            recons.append((show(out[0]), f"{kind} de-tokenizer, from {ntok} tokens"))
        widths = [max(len(words[r * side + c]) for r in range(side)) for c in range(side)]  # per column
        rows = "\n".join(
            " ".join(words[r * side + c].ljust(widths[c]) for c in range(side)).rstrip() for r in range(side)
        )
        missing = [kind for kind in DECODERS if kind not in self.d.decoders]
        summary = (
            f"Scale {k}: {ntok} tokens ({side}x{side}), {len(set(ids[0].tolist()))} distinct codes. "
            f"Reconstructions: {', '.join(times)}."
            + (f" This model ships no {' or '.join(missing)} de-tokenizer." if missing else "")
        )
        return overlay, recons, f"{token_string(ids[0], k)}\n\n{rows}", summary
