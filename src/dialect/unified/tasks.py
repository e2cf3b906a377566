"""Tar's four tasks as training samples, from ShapeWorld or from a user JSONL file.

Every sample is a dict the trainer collates:

    "image":  (3, H, W) in [-1, 1]  the input image (I2T, I2I, TI2I) or the image to draw (T2I)
    "target": (3, H, W) in [-1, 1]  the output image (T2I: the image itself; I2I / TI2I: the new
              image; I2T: the input again, unused)
    "meta":   {"task", "user" (the user's text), "answer" (assistant text, "" for image outputs),
               "scale" (TA-Tok scale of the output image, -1 for text outputs), ...}

Tasks (paper section "Tar, the unified LM"):
    caption  user: image + caption request           assistant: a complete caption  (I2T)
    vqa      user: image + question                  assistant: one-word answer     (I2T)
             (+ up to `vqa_turns - 1` more question/answer turns about the same image)
             (`vqa_describe`: a share of them first asks for a caption, then every question)
             (`vqa_reason`: the first answer describes the scene, then answers; see `reasoned`)
    t2i      user: a caption as the prompt           assistant: image at scale k    (T2I)
             (`t2i_drop`: a share with the prompt nulled, for guidance inside the LM)
    i2i      user: image + "redraw" / "variation"    assistant: the same scene      (I2I)
    ti2i     user: image + edit instruction          assistant: the edited image    (TI2I)
             (`ti2i_image_drop` / `ti2i_text_drop`: a share with the input image / the
             instruction nulled, for guidance on it; `ti2i_anchor`: the target tokenized
             anchored to the source's codes)
    tqa      user: a scene in words + question       assistant: one-word answer     (text only)
             (ShapeWorld only; off unless weighted: questions answered from a written
             `world.scene_description`, the lookup `vqa_reason` needs, taught in text alone)
The task of sample i and the output scale are drawn from (seed, i) with the configured weights,
so a dataset is deterministic and resumable like every other source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.core.images import to_tensor
from dialect.data.sample import skip_or_raise
from dialect.data.sources import JsonlDataset
from dialect.data.transforms import BadImage, ImageTransform, decode_image
from dialect.unified.template import Null
from dialect.world import WorldConfig, make_example, make_variation, render, scene_description
from dialect.world.scene import SPLITS, Scene

TASKS = ("caption", "vqa", "t2i", "i2i", "ti2i", "tqa")
TEXT_ONLY = ("tqa",)  # tasks whose samples hold no image (the rest read or draw one)
DEFAULT_WEIGHTS = {"caption": 1.0, "vqa": 2.0, "t2i": 3.0, "i2i": 0.5, "ti2i": 1.0}
# the kinds of null condition guidance decodes against (`template.null_conversation`; "instruction"
# nulls an edit's text) -> the TaskConfig share that trains the LM on that null, and what it nulls
# (for messages)
GUIDANCE_DROPOUT = {
    "text": ("t2i_drop", "prompt"),
    "image": ("ti2i_image_drop", "input-image"),
    "instruction": ("ti2i_text_drop", "edit-instruction"),
}
# task -> (share, meta flag) of each condition dropout its samples draw, in draw order
DROPS = {
    "t2i": (("t2i_drop", "null_prompt"),),
    "ti2i": (("ti2i_image_drop", "null_image"), ("ti2i_text_drop", "null_text")),
}
IMAGE_OUTPUT = ("t2i", "i2i", "ti2i")
# what separates a reasoned reply's description from its answer (`reasoned`, `final_answer`)
ANSWER_MARK = "answer:"
REQUESTS = {
    "caption": (
        "describe the image.",
        "what is in this picture?",
        "write a caption for this image.",
        "caption this image.",
    ),
    "redraw": ("redraw this image.", "draw this image again.", "copy this picture."),
    "variation": ("draw a variation of this image.", "make a similar picture.", "show the same scene again."),
}


@dataclass
class TaskConfig:
    """Which tasks a Tar run trains on and how often; which TA-Tok scale an output image uses."""

    # task -> weight; {} = DEFAULT_WEIGHTS. Empty by default because config files merge into the
    # defaults key by key: a default holding every task would keep them all in a run whose YAML
    # names only some (`weights: {t2i: 1.0}` must train t2i alone)
    weights: dict[str, float] = field(default_factory=dict)
    scale_weights: list[float] = field(default_factory=lambda: [1.0])  # per scale, for output images
    variation: float = 0.5  # fraction of i2i samples that are variations (the rest: redraws)
    # question/answer turns per vqa sample (distinct questions about one image, in random order), as
    # in LLaVA-style instruction data: an image costs 64+ tokens and an answer 2, so each extra
    # turn adds supervision for ~17 tokens; 1 = one question per sample
    vqa_turns: int = 1
    # fraction of vqa samples that open with a caption turn (user: image + caption request,
    # assistant: a complete caption) before their questions: the LM binds colour to shape far
    # better when it describes than when it is asked (experiments/results/vqa_binding.md), so
    # these samples let an answer look the object up in the caption it just wrote
    vqa_describe: float = 0.0
    # describe, then answer (a short chain of thought): the first answer of every vqa sample is
    # "<every object, left to right, in canonical words>; <the objects the question is about>;
    # answer: <answer>" (`reasoned`); the later turns answer plainly. `Dialect.ask` returns the
    # answer alone (`final_answer`). ShapeWorld scenes only: a user's question/answer pair has no
    # scene to describe and trains as it is. Off in the preset: at the tiny LM's 4,200 steps it
    # describes scenes well but fails to pick the asked-about objects out of its own text, and
    # VQA-mini falls from 0.864 to 0.546 (experiments/results/vqa_reason.md)
    vqa_reason: bool = False
    # fraction of t2i samples whose prompt is replaced by the null prompt (`template.Null`):
    # condition dropout, so the LM can sample with classifier-free guidance (`cfg_scale` > 1).
    # The paper keeps guidance in the de-tokenizer only (0 here = its recipe); LlamaGen-style
    # T2I models drop 10% of prompts
    t2i_drop: float = 0.0
    # fraction of ti2i samples whose input image is nulled (its codes -> [PAD], instruction kept):
    # guidance on the input image when editing, as InstructPix2Pix guides on its input image
    ti2i_image_drop: float = 0.0
    # fraction of ti2i samples whose instruction is nulled (input image kept, target still the edited
    # image): guidance on the instruction when editing, InstructPix2Pix's text guidance. Drawn
    # independently of ti2i_image_drop
    ti2i_text_drop: float = 0.0
    # the target of a ti2i sample is tokenized anchored to its source: wherever the source's code
    # at a position is within this cosine similarity of the target's best code, the target keeps
    # the source's code (`TATok.encode_ids(anchor=...)`), so an edit changes only the codes of
    # what it changes. 0 = off, each image tokenized on its own (the paper). Images only: a
    # pretokenized source has no edits
    ti2i_anchor: float = 0.0

    def mix(self) -> dict[str, float]:
        """The task weights in force: `weights`, or DEFAULT_WEIGHTS when it is empty."""
        return dict(self.weights) or dict(DEFAULT_WEIGHTS)

    def validate(self, num_scales: int) -> TaskConfig:
        mix = self.mix()
        unknown = set(mix) - set(TASKS)
        if unknown:
            raise DialectError(f"unknown Tar task(s) {sorted(unknown)}; known: {', '.join(TASKS)}")
        if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise DialectError(f"task weights must be >= 0 with a positive sum, got {mix}")
        sw = self.scale_weights
        if not sw or len(sw) > num_scales or any(w < 0 for w in sw) or sum(sw) <= 0:
            raise DialectError(
                f"scale_weights needs 1..{num_scales} non-negative weights with a positive sum, got {sw}"
            )
        if not 0.0 <= self.vqa_describe <= 1.0:
            raise DialectError(f"vqa_describe must be in [0, 1], got {self.vqa_describe}")
        if self.ti2i_anchor < 0:
            raise DialectError(f"ti2i_anchor must be >= 0 (0 = off), got {self.ti2i_anchor}")
        if self.vqa_turns < 1:
            raise DialectError(f"vqa_turns must be >= 1, got {self.vqa_turns}")
        for name, _ in GUIDANCE_DROPOUT.values():
            if not 0.0 <= getattr(self, name) < 1.0:
                raise DialectError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        return self

    def trained_for(self, null: str) -> bool:
        """Whether training nulls `null` ("text" | "image", see GUIDANCE_DROPOUT) for a share of
        samples, so that guidance against that null means something."""
        if null not in GUIDANCE_DROPOUT:
            raise DialectError(f"null must be one of {', '.join(GUIDANCE_DROPOUT)}, got {null!r}")
        return getattr(self, GUIDANCE_DROPOUT[null][0]) > 0

    def edit_null(self) -> str:
        """What edit guidance nulls: the instruction when training nulled instructions
        (`ti2i_text_drop` > 0), else the input image (see GUIDANCE_DROPOUT)."""
        return "instruction" if self.ti2i_text_drop > 0 else "image"

    def drop(self, rng: np.random.Generator, task: str) -> dict[str, bool]:
        """A sample's extra meta for guidance training: {"null_prompt": True} for a `t2i_drop` share
        of t2i samples; {"null_image": True} for a `ti2i_image_drop` share of ti2i ones and
        {"null_text": True} for a `ti2i_text_drop` share (independently); else {}. No draw at
        share 0, so runs without dropout keep their data bit for bit."""
        out = {}
        for name, key in DROPS.get(task, ()):
            share = getattr(self, name)
            if share > 0 and rng.random() < share:
                out[key] = True
        return out

    def questions(self, rng: np.random.Generator, qa: list[dict]) -> tuple[dict, list[list[str]]]:
        """Up to `vqa_turns` distinct entries of a scene's `qa` list, in random order -> (the first
        entry, the others as the sample's "turns": [[question, answer], ...])."""
        first, *more = (qa[int(i)] for i in rng.permutation(len(qa))[: self.vqa_turns])
        return first, [[q["question"], q["answer"]] for q in more]

    def draw(self, rng: np.random.Generator, available: tuple[str, ...] = TASKS) -> tuple[str, int]:
        """(task, output scale) for one sample; only tasks in `available` are drawn."""
        mix = self.mix()
        names = [t for t in TASKS if t in available and mix.get(t, 0) > 0]
        if not names:
            raise DialectError(f"no task with a positive weight among {', '.join(available)}")
        p = np.array([mix[t] for t in names], dtype=float)
        task = names[int(rng.choice(len(names), p=p / p.sum()))]
        sw = np.array(self.scale_weights, dtype=float)
        return task, int(rng.choice(len(sw), p=sw / sw.sum()))


def reasoned(scene: Scene, qa: dict) -> str:
    """A question's described-then-answered reply: the scene (`world.scene_description`), the
    objects the question is about (its "refs", or "none"), then ANSWER_MARK and the answer:
    "large red circle left top, small blue square right bottom; small blue square right bottom;
    answer: small". Writing the objects out first makes the answer a lookup in a short list."""
    about = scene_description(scene, [scene.objects[i] for i in qa["refs"]])
    return f"{scene_description(scene)}; {about}; {ANSWER_MARK} {qa['answer']}"


def final_answer(reply: str) -> str:
    """The answer of a reply: the text after its last ANSWER_MARK (the tokenizer may decode it as
    "answer :"), stripped; a reply without the mark is its own answer."""
    _, mark, tail = reply.replace(" :", ":").rpartition(ANSWER_MARK)
    return tail.strip() if mark else reply


def _sample(image, target, task: str, user: str, answer: str, scale: int, **meta) -> dict[str, Any]:
    """meta may hold "turns": [[question, answer], ...], the vqa turns after the first."""
    return {
        "image": image,
        "target": target,
        "meta": {
            "task": task,
            "user": user,
            "answer": answer,
            "scale": scale if task in IMAGE_OUTPUT else -1,
            **meta,
        },
    }


class ShapeWorldTasks(Dataset):
    """Tar samples from procedural ShapeWorld examples (see the module docstring)."""

    def __init__(
        self, tasks: TaskConfig, world: WorldConfig, num_scales: int, seed: int = 0,
        length: int = 2**31 - 1, split: str = "train",
    ) -> None:  # fmt: skip
        if split not in SPLITS:
            raise DialectError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        self.tasks, self.world = tasks.validate(num_scales), world.validate()
        self.seed, self.length, self.split = seed, length, split

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index, 2])
        task, scale = self.tasks.draw(rng)
        ex = make_example(index, self.seed, self.world, self.split, with_edits=task == "ti2i")
        if task == "ti2i" and not ex["edits"]:  # rare: no object can be named uniquely
            task = "i2i"
        image = to_tensor(ex["image"])
        scene_meta = {"scene": ex["scene"].to_dict(), "index": index}
        pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
        if task == "caption":
            # a caption request is answered with a complete caption (every object, every attribute:
            # the first two of `world.captions`); the partial ones (relations, counts) are t2i prompts
            answer = pick(ex["captions"][:2])
            return _sample(image, image, task, pick(REQUESTS["caption"]), answer, scale, **scene_meta)
        if task == "vqa":
            qa, turns = self.tasks.questions(rng, ex["qa"])
            if self.tasks.vqa_reason:  # the description once per conversation, at the first answer
                qa = {**qa, "answer": reasoned(ex["scene"], qa)}
            if self.tasks.vqa_describe > 0 and rng.random() < self.tasks.vqa_describe:
                turns = [[qa["question"], qa["answer"]], *turns]  # every question after the caption
                caption = pick(ex["captions"][:2])
                return _sample(
                    image, image, task, pick(REQUESTS["caption"]), caption, scale, qtype="describe",
                    turns=turns, **scene_meta,
                )  # fmt: skip
            return _sample(
                image, image, task, qa["question"], qa["answer"], scale, qtype=qa["type"], turns=turns,
                **scene_meta,
            )  # fmt: skip
        if task == "tqa":  # the scene in words, then its questions; no image in the sequence
            qa, turns = self.tasks.questions(rng, ex["qa"])
            user = f"{scene_description(ex['scene'])}; {qa['question']}"
            return _sample(image, image, task, user, qa["answer"], scale, turns=turns, **scene_meta)
        if task == "t2i":
            prompt = pick(ex["captions"])
            return _sample(image, image, task, prompt, "", scale, **self.tasks.drop(rng, task), **scene_meta)
        if task == "i2i":
            if rng.random() < self.tasks.variation:
                new: Scene = make_variation(rng, ex["scene"], self.world)
                target = to_tensor(render(new, self.world))
                return _sample(image, target, task, pick(REQUESTS["variation"]), "", scale, **scene_meta)
            return _sample(image, image, task, pick(REQUESTS["redraw"]), "", scale, **scene_meta)
        edit = pick(ex["edits"])
        target = to_tensor(render(edit["target"], self.world))
        return _sample(
            image, target, task, edit["instruction"], "", scale, **self.tasks.drop(rng, task),
            edit_type=edit["type"], target_scene=edit["target"].to_dict(), **scene_meta,
        )  # fmt: skip


class JsonlTasks(Dataset):
    """Tar samples from a JSONL file of the user's own data. Each line names an "image" and one of

        {"text": "a caption"}                       -> caption (I2T) or t2i, drawn per sample
        {"question": "...", "answer": "..."}        -> vqa
        {"instruction": "...", "target": "b.png"}   -> ti2i (target resolved like "image")

    Unusable images are skipped (or, with `strict`, raise) like every other file source."""

    def __init__(
        self, path: str | Path, tasks: TaskConfig, num_scales: int, transform: ImageTransform,
        seed: int = 0, strict: bool = False, min_size: int = 8,
    ) -> None:  # fmt: skip
        self.files = JsonlDataset(path, transform, strict, min_size)
        self.tasks, self.seed = tasks.validate(num_scales), seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        sample = self.files[index]
        if not isinstance(sample, dict):
            return sample  # Skipped
        meta, image = sample["meta"], sample["image"]
        rng = np.random.default_rng([self.seed, index, 2])
        if "question" in meta and "answer" in meta:
            _, scale = self.tasks.draw(rng)
            return _sample(image, image, "vqa", str(meta["question"]), str(meta["answer"]), scale)
        if "instruction" in meta and "target" in meta:
            target_path = Path(self.files.path).parent / str(meta["target"])
            try:
                target = self.files.transform(decode_image(target_path, self.files.min_size), index)
            except BadImage as exc:
                return skip_or_raise(str(target_path), exc.reason, self.files.strict)
            _, scale = self.tasks.draw(rng)
            return _sample(
                image, target, "ti2i", str(meta["instruction"]), "", scale, **self.tasks.drop(rng, "ti2i")
            )
        if not sample["text"]:
            return skip_or_raise(
                str(meta.get("path", index)), "no text, question or instruction", self.files.strict
            )
        task, scale = self.tasks.draw(rng, available=("caption", "t2i"))
        if task == "caption":
            return _sample(image, image, task, str(rng.choice(REQUESTS["caption"])), sample["text"], scale)
        return _sample(image, image, task, sample["text"], "", scale, **self.tasks.drop(rng, task))


def conversation(
    meta: dict[str, Any], image_span, target_span, image_last: bool = False, question_first: bool = False
) -> list:
    """The chat turns of one sample, given the ImageSpans of its input and output images.
    `image_last` (`TarConfig.image_last`): an I2I / TI2I user turn is [instruction, image].
    `question_first` (`TarConfig.question_first`): the first I2T user turn is [request, image]."""
    task = meta["task"]
    if task == "t2i":
        prompt = Null(meta["user"]) if meta.get("null_prompt") else meta["user"]
        return [("user", [prompt]), ("assistant", [target_span])]
    if task in ("caption", "vqa", *TEXT_ONLY):
        more = [t for q, a in meta.get("turns", ()) for t in (("user", [q]), ("assistant", [a]))]
        user = meta["user"]
        first = [user] if task in TEXT_ONLY else image_prompt(image_span, user, question_first)
        return [("user", first), ("assistant", [meta["answer"]]), *more]
    source = Null(image_span) if meta.get("null_image") else image_span
    instruction = Null(meta["user"]) if meta.get("null_text") else meta["user"]
    return [("user", image_prompt(source, instruction, image_last)), ("assistant", [target_span])]


def image_prompt(image_span, text: str, text_first: bool = False) -> list:
    """The user content of a turn about an image: [image, text], or [text, image] with `text_first`
    (an I2I / TI2I turn: `TarConfig.image_last`; an I2T turn: `TarConfig.question_first`)."""
    return [text, image_span] if text_first else [image_span, text]
