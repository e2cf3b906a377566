"""Training from a pretokenized folder (`data.source=pretokenized`, alone or inside `data.mix`):
the recipes read the ids `dialect pretokenize` stored instead of re-running the frozen tokenizers.

- `check_tokenizers`: a folder made by another TA-Tok (or pixel VQ) than the run's is refused,
  by the `Pretrained.fingerprint` the folder's index records.
- The de-tokenizers read a pretokenized batch as it is (`detok.ar`, `detok.diffusion`).
- Tar: `PretokenizedTasks` turns stored samples into Tar's task samples, with each image given
  as its stored ids at every scale, concatenated in scale order (LongTensor (sum_k n_k,));
  `Tar.encode_images` cuts the asked scale out of such integer ids instead of encoding pixels.
  Only the tasks whose images are stored can be drawn: caption, vqa, t2i and
  i2i as a redraw (variations and edits need a second image, which pretokenize does not store).
- DDP: every rank opens the whole folder (`PretokenizedDataset`'s default view) and the trainer's
  `ResumableSampler` hands each rank its slice of every global batch, shard-aware through the
  dataset's `blocks`, as for any map-style source; so a run resumes from its position alone and
  N ranks see what one process would. (The dataset's own `rank` / `world_size` view is for readers
  outside the trainer; used under it, the data would be split twice.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dialect.data.mix import MixtureDataset
from dialect.data.sample import Skipped, skip_or_raise
from dialect.data.tokens import PretokenizedDataset, ids_key
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.tatok import TATok
from dialect.unified.tasks import IMAGE_OUTPUT, REQUESTS, TaskConfig, reasoned
from dialect.world.scene import Scene


def stored_parts(dataset: Dataset) -> list[PretokenizedDataset]:
    """The pretokenized folders a training dataset reads (through a mixture or a task wrapper)."""
    parts = dataset.sources if isinstance(dataset, MixtureDataset) else [dataset]
    parts = [p.tokens if isinstance(p, PretokenizedTasks) else p for p in parts]
    return [p for p in parts if isinstance(p, PretokenizedDataset)]


def check_tokenizers(
    dataset: Dataset, tatok: TATok, tatok_path: str, codec: PixelVQ | None = None, codec_path: str = ""
) -> None:
    """Refuse (DialectError) pretokenized folders in `dataset` whose ids another TA-Tok (or, when
    `codec` is given, another pixel VQ, or none) made than the run's, loaded from the paths given."""
    parts = stored_parts(dataset)
    if not parts:
        return
    tatok_fp = tatok.fingerprint()
    codec_fp = codec.fingerprint() if codec is not None else ""
    for part in parts:
        part.require_tokenizer("tatok", tatok_fp, tatok_path)
        if codec is not None:
            part.require_tokenizer("pixelvq", codec_fp, codec_path)


class PretokenizedTasks(Dataset):
    """Tar task samples from a pretokenized folder; see the module docstring. The task and output
    scale of item i are drawn from (seed, i) with the configured weights, as in `unified.tasks`:

        ShapeWorld items (meta with "captions" and "qa") -> caption, vqa, t2i or i2i (redraw)
        a record with "question" and "answer"             -> vqa
        any other item with text                          -> caption or t2i
    """

    def __init__(
        self, tokens: PretokenizedDataset, tasks: TaskConfig, num_scales: int, seed: int = 0,
        strict: bool = False,
    ) -> None:  # fmt: skip
        self.tokens, self.tasks = tokens, tasks.validate(num_scales)
        self.num_scales, self.seed, self.strict = num_scales, seed, strict

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blocks(self) -> list[int]:
        return self.tokens.blocks

    def __getitem__(self, index: int) -> dict[str, Any] | Skipped:
        item = self.tokens[index]
        meta, text = item["meta"], item["text"]
        ids = torch.cat([item[ids_key(k)] for k in range(self.num_scales)])
        rng = np.random.default_rng([self.seed, index, 2])
        pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
        where = f"{self.tokens.folder}[{index}]"
        if "question" in meta and "answer" in meta:
            _, scale = self.tasks.draw(rng)
            return _task(ids, "vqa", str(meta["question"]), str(meta["answer"]), scale)
        if "instruction" in meta:
            return skip_or_raise(where, "an edit needs its target image's ids (not stored)", self.strict)
        captions, qa = meta.get("captions") or [], meta.get("qa") or []
        if captions and qa:  # ShapeWorld: every caption and question of the scene
            task, scale = self.tasks.draw(rng, available=("caption", "vqa", "t2i", "i2i"))
            if task == "vqa":
                q, turns = self.tasks.questions(rng, qa)
                if self.tasks.vqa_reason and "scene" in meta and "refs" in q:  # as in ShapeWorldTasks
                    q = {**q, "answer": reasoned(Scene.from_dict(meta["scene"]), q)}
                return _task(ids, task, q["question"], q["answer"], scale, turns=turns)
            if task == "i2i":
                return _task(ids, task, pick(REQUESTS["redraw"]), "", scale)
            # a caption request is answered with a complete caption (the first two, as in unified.tasks)
            caption = pick(captions[:2]) if task == "caption" else pick(captions)
        elif text:
            task, scale = self.tasks.draw(rng, available=("caption", "t2i"))
            caption = text
        else:
            return skip_or_raise(where, "no text, question or instruction", self.strict)
        if task == "caption":
            return _task(ids, task, pick(REQUESTS["caption"]), caption, scale)
        return _task(ids, task, caption, "", scale, **self.tasks.drop(rng, task))


def _task(ids: torch.Tensor, task: str, user: str, answer: str, scale: int, **extra) -> dict[str, Any]:
    """One Tar sample whose input and output image are both the stored image (`ids`); `extra` goes
    into its meta (e.g. a vqa sample's "turns")."""
    meta = {"task": task, "user": user, "answer": answer, "scale": scale if task in IMAGE_OUTPUT else -1}
    meta.update(extra)
    return {"image": ids, "target": ids, "meta": meta}
