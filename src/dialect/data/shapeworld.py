"""ShapeWorld as a map-style torch Dataset: any index, any order, the same sample every time.

Sample i (a dict):
    "image":  FloatTensor (3, H, W) in [-1, 1]  (H = W = cfg.size)
    "text":   task "caption": one of the scene's captions; "qa": a question; "edit": an instruction
    "answer": (task "qa" only) the one-word answer
    "target": (task "edit" only) FloatTensor (3, H, W) in [-1, 1], the edited image
    "meta":   {"index": i, "scene": scene dict, "captions": [...], "qa": [...]}
              (+ "qa_index" for "qa"; + "edit": {"instruction", "type", "target": scene dict} for "edit")
Which caption / question / edit is used is drawn from the index, so it is deterministic too.
`length` bounds the indices: a huge length is an endless training stream, a small one with another
seed or split is a fixed eval set. Batch with `dialect.data.collate` (it stacks "target" and lists the rest).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.core.images import to_tensor
from dialect.world import SPLITS, WorldConfig, make_example, render
from dialect.world.scene import check_split

TASKS = ("caption", "qa", "edit")


class ShapeWorldDataset(Dataset):
    """Procedural ShapeWorld samples (see the module docstring for the sample layout)."""

    def __init__(
        self,
        cfg: WorldConfig | None = None,
        seed: int = 0,
        length: int = 2**31 - 1,
        split: str = "train",
        task: str = "caption",
    ) -> None:
        if task not in TASKS:
            raise DialectError(f"unknown ShapeWorld task '{task}'; choose one of {', '.join(TASKS)}")
        if length < 1 or seed < 0:
            raise DialectError(
                f"ShapeWorld needs length >= 1 and seed >= 0, got length={length}, seed={seed}"
            )
        self.cfg = (cfg or WorldConfig()).validate()
        self.seed, self.length, self.split, self.task = int(seed), int(length), check_split(split), task

    def __len__(self) -> int:
        return self.length

    def _choice_rng(self, index: int) -> np.random.Generator:
        # Separate from the example's own stream so the choice never changes the example.
        return np.random.default_rng([self.seed, SPLITS.index(self.split), index, 1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a ShapeWorld dataset of length {self.length}")
        ex = make_example(index, self.seed, self.cfg, self.split, with_edits=self.task == "edit")
        attempt = 0
        while self.task == "edit" and not ex["edits"]:  # rare: every object has an identical twin
            attempt += 1
            ex = make_example(index, self.seed, self.cfg, self.split, with_edits=True, attempt=attempt)
        rng = self._choice_rng(index)
        meta = {"index": index, "scene": ex["scene"].to_dict(), "captions": ex["captions"], "qa": ex["qa"]}
        sample: dict[str, Any] = {"image": to_tensor(ex["image"])}
        if self.task == "caption":
            sample["text"] = ex["captions"][int(rng.integers(len(ex["captions"])))]
        elif self.task == "qa":
            k = int(rng.integers(len(ex["qa"])))
            sample["text"], sample["answer"] = ex["qa"][k]["question"], ex["qa"][k]["answer"]
            meta["qa_index"] = k
        else:
            edit = ex["edits"][int(rng.integers(len(ex["edits"])))]
            sample["text"] = edit["instruction"]
            sample["target"] = to_tensor(render(edit["target"], self.cfg))
            meta["edit"] = {**edit, "target": edit["target"].to_dict()}
        sample["meta"] = meta
        return sample
