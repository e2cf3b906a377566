"""The one sample format every source yields, the `Skipped` sentinel, `collate`, and `SkipCounter`.

A sample is a dict::

    {"image": FloatTensor (3, H, W) in [-1, 1], "text": str ("" if none), "meta": dict}

Sources may add further keys (tensors or plain values); `collate` stacks tensors and lists the rest.

A file that cannot be used (unreadable, not an image, truncated, too small, missing) never raises
mid-epoch: the source returns `Skipped(path, reason)` in its place, `collate` drops it and records
it in `batch["skipped"]`, and the trainer counts it with a `SkipCounter`. With `strict=True` a
source raises :class:`DialectError` naming the file and the reason instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import torch

from dialect.core.errors import DialectError

log = logging.getLogger("dialect.data")


class Sample(TypedDict):
    """One training example (extra keys allowed at runtime)."""

    image: torch.Tensor  # (3, H, W) float in [-1, 1]
    text: str  # caption or prompt; "" when the source has none
    meta: dict[str, Any]  # source-specific: path, key, labels, JSONL extra fields, ...


@dataclass(frozen=True)
class Skipped:
    """Stands in for a sample whose file could not be used; `collate` drops it and records it."""

    path: str
    reason: str  # short, e.g. "truncated image", "not an image", "too small (1x1)"


def skip_or_raise(path: str, reason: str, strict: bool) -> Skipped:
    """The skip policy in one place: a `Skipped` sentinel, or with `strict` a `DialectError`."""
    if strict:
        raise DialectError(f"cannot use {path}: {reason}")
    return Skipped(str(path), reason)


def collate(samples: Sequence[Sample | Skipped]) -> dict[str, Any]:
    """Samples -> batch; `Skipped` entries are dropped and listed.

    Returns ``{"image": (B, 3, H, W), "text": list[str], "meta": list[dict],
    "skipped": list[(path, reason)], "num_samples": int}`` where `num_samples` counts every
    input entry, skipped ones included (streams advance their position by it). Extra keys are
    stacked when they are tensors of one shape, else listed. When every entry was skipped, B is 0
    and `image` is an empty (0, 3, 0, 0) tensor: the trainer skips such a batch and counts it.
    Samples without an image (stored token ids, `dialect.data.tokens`) give a batch without one.
    """
    good = [s for s in samples if not isinstance(s, Skipped)]
    skipped = [(s.path, s.reason) for s in samples if isinstance(s, Skipped)]
    batch: dict[str, Any] = {}
    with_image = sum("image" in s for s in good)
    if with_image not in (0, len(good)):
        raise DialectError("cannot batch samples with and without an image together")
    if with_image or not good:
        batch["image"] = _stack("image", [s["image"] for s in good]) if good else torch.empty(0, 3, 0, 0)
    batch["text"] = [s.get("text") or "" for s in good]
    batch["meta"] = [dict(s.get("meta") or {}) for s in good]
    extra = sorted({k for s in good for k in s} - set(batch))
    for key in extra:
        values = [s.get(key) for s in good]
        if all(isinstance(v, torch.Tensor) for v in values):
            batch[key] = _stack(key, values)
        else:
            batch[key] = values
    batch["skipped"] = skipped
    batch["num_samples"] = len(samples)
    return batch


def _stack(key: str, tensors: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise DialectError(f"cannot batch '{key}': samples have different shapes {sorted(shapes)}")
    return torch.stack(tensors)


class SkipCounter:
    """Aggregates skipped files across batches; logs each new file once and formats a summary.

    `update` takes a batch (uses its "skipped" list) or an iterable of (path, reason) pairs.
    `len(counter)` is the number of distinct files; `events` counts every occurrence (a bad file
    is met again each epoch).
    """

    def __init__(self, max_listed: int = 10):
        self.max_listed = max_listed  # how many files `summary` names before "and N more"
        self.reasons: dict[str, str] = {}  # path -> reason, in first-seen order
        self.events = 0

    def update(self, skipped: Mapping[str, Any] | Iterable[tuple[str, str]]) -> int:
        """Record skipped entries; returns how many of them are files not seen before."""
        if isinstance(skipped, Mapping):
            skipped = skipped.get("skipped", ())
        new = 0
        for path, reason in skipped:
            self.events += 1
            if path not in self.reasons:
                self.reasons[path] = reason
                new += 1
                log.warning("skipped %s (%s)", path, reason)
        return new

    def __len__(self) -> int:
        return len(self.reasons)

    def summary(self) -> str:
        """E.g. "skipped 3 files: a.jpg (truncated image), b.png (not an image), c.png (too small 1x1)"."""
        n = len(self.reasons)
        if n == 0:
            return "skipped 0 files"
        items = [f"{p} ({r})" for p, r in list(self.reasons.items())[: self.max_listed]]
        more = f" and {n - self.max_listed} more" if n > self.max_listed else ""
        return f"skipped {n} file{'s' if n != 1 else ''}: {', '.join(items)}{more}"

    def state_dict(self) -> dict[str, Any]:
        return {"reasons": dict(self.reasons), "events": self.events}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reasons = dict(state["reasons"])
        self.events = int(state["events"])
