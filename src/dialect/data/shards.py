"""WebDataset tar shards as a resumable iterable dataset (read with `tarfile`, no pipeline library).

Layout (the WebDataset convention): files in a tar are grouped into samples by key, the member
name up to the first dot of its basename; `000123.jpg`, `000123.txt`, `000123.json` form one
sample. The image is any of png/jpg/jpeg/webp/bmp; `.txt` is the text (else a "text" string in
the `.json`); the `.json` object and a `.cls` integer ("label") go into meta.

The stream, exactly:
- A *pass* lists every sample of every shard (shard order, and sample order within each shard,
  permuted from (seed, pass) when `shuffle`). A rank takes every `world_size`-th entry starting at
  `rank`; the tail that does not divide evenly is dropped, so every rank has the same length and
  DDP never waits on a rank that ran out.
- `consumed` counts the samples (skipped ones included) this rank has handed to its consumer.
  One `iter()` yields the rest of the current pass, starting at `consumed`, so resuming from
  `state_dict()` continues with the next unseen sample and a new `iter()` starts the next pass;
  with `repeat=True` (what `build_dataset` makes, for step-based training) it never ends.
- DataLoader workers deal whole batches round-robin (worker w takes batches w, w + W, ...), which
  is the order in which the DataLoader returns them, so the batches arrive in stream order.
  Set `batch_size` to the loader's batch size (`build_loader` does).
- The process iterating cannot see what the consumer kept, so the consumer reports it:
  `advance(batch["num_samples"])` after each batch (`build_loader`'s loader does this).

Every shard's tar headers are read once at construction (cheap: tarfile seeks over the data);
each rank then reads only the bytes of its own samples.
"""

from __future__ import annotations

import glob
import itertools
import json
import logging
import os
import posixpath
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from dialect.core.errors import DialectError
from dialect.data.sample import Sample, Skipped, skip_or_raise
from dialect.data.transforms import BadImage, ImageTransform, decode_image

log = logging.getLogger("dialect.data")

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp")

# A shard's index: one (key, {extension: (data offset, size)}) per sample, in tar order.
ShardIndex = list[tuple[str, dict[str, tuple[int, int]]]]


def expand_shards(pattern: str) -> list[str]:
    """`shards-{000..009}.tar` -> the listed files; also accepts globs and a folder of *.tar.

    Missing files -> DialectError naming the first few.
    """
    from braceexpand import braceexpand  # a dependency of the webdataset package

    if os.path.isdir(pattern):
        found = sorted(glob.glob(os.path.join(pattern, "*.tar")))
        if not found:
            raise DialectError(f"no .tar shards in folder {pattern}")
        return found
    paths = []
    for item in braceexpand(pattern):
        paths.extend(sorted(glob.glob(item)) if glob.has_magic(item) else [item])
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing or not paths:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DialectError(f"shards not found for {pattern!r}: {shown or 'the pattern matches nothing'}")
    return paths


def index_shard(path: str, strict: bool = False) -> ShardIndex:
    """Read the tar headers of one shard and group its files into samples by key.

    A damaged tar raises DialectError with `strict`; otherwise the samples read before the damage
    are kept and a warning is logged.
    """
    groups: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                base = posixpath.basename(member.name)
                if not member.isfile() or base.startswith("."):
                    continue
                stem, _, ext = base.partition(".")
                key = posixpath.join(posixpath.dirname(member.name), stem)
                groups.setdefault(key, {})[ext.lower()] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError) as exc:
        if strict or not groups:
            raise DialectError(f"cannot read shard {path}: {exc}") from None
        log.warning("shard %s is damaged after %d samples (%s); using those", path, len(groups), exc)
    return list(groups.items())


class WebDatasetStream(IterableDataset):
    """Samples from WebDataset tar shards; see the module docstring for the exact stream order."""

    def __init__(
        self,
        shards: str | list[str],
        transform: ImageTransform | None = None,
        strict: bool = False,
        min_size: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int = 1,
        repeat: bool = False,
    ):
        self.shards = expand_shards(shards) if isinstance(shards, str) else [str(s) for s in shards]
        self.transform = transform or ImageTransform()
        self.strict = strict
        self.min_size = min_size
        self.shuffle = shuffle  # permute shards and samples per pass, from (seed, pass)
        self.seed = seed
        self._rank, self._world_size = rank, world_size  # None: torch.distributed's, else (0, 1)
        self.batch_size = batch_size  # set to the DataLoader's batch size when using workers
        self.repeat = repeat  # True: one iter() runs through pass after pass, never ending
        self.consumed = 0
        self.index = [index_shard(s, strict) for s in self.shards]
        self._offsets = np.cumsum([0] + [len(i) for i in self.index])  # stable global sample ids
        if self.num_samples == 0:
            raise DialectError(f"no samples in {len(self.shards)} shard(s): {self.shards[0]} ...")

    @property
    def num_samples(self) -> int:
        """Samples in all shards (before the per-rank split)."""
        return int(self._offsets[-1])

    def rank_world(self) -> tuple[int, int]:
        if self._world_size is not None:
            return (self._rank or 0), self._world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def samples_per_pass(self) -> int:
        """Samples one rank sees per pass."""
        return self.num_samples // self.rank_world()[1]

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.consumed = int(state["consumed"])

    def advance(self, n: int) -> None:
        """Record that the consumer took `n` more samples (skipped ones included)."""
        self.consumed += int(n)

    def end_pass(self) -> None:
        """Move `consumed` to the start of the next pass unless it is already at a pass boundary."""
        per_rank = self.samples_per_pass()
        if per_rank and self.consumed % per_rank:
            self.consumed += per_rank - self.consumed % per_rank

    def _pass_order(self, epoch: int) -> Iterator[tuple[int, int]]:
        """(shard, sample) pairs of every sample, in the order of pass `epoch`."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch])
        shard_order = rng.permutation(len(self.index)) if self.shuffle else range(len(self.index))
        for s in shard_order:
            n = len(self.index[s])
            for j in rng.permutation(n) if self.shuffle else range(n):
                yield int(s), int(j)

    def __iter__(self) -> Iterator[Sample | Skipped]:
        rank, world = self.rank_world()
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        per_rank = self.num_samples // world
        if per_rank == 0:
            return
        epoch, offset = divmod(self.consumed, per_rank)
        k = 0  # position since this iterator started; batches of it are dealt to workers in turn
        while True:
            mine = itertools.islice(self._pass_order(epoch), rank, per_rank * world, world)
            for s, j in itertools.islice(mine, offset, None):
                if (k // self.batch_size) % num_workers == worker:
                    yield self._load(s, j)
                k += 1
            if not self.repeat:
                return
            epoch, offset = epoch + 1, 0

    def load(self, g: int) -> Sample | Skipped:
        """Sample g of all shards in shard order (random access; the stream order is not used)."""
        if not 0 <= g < self.num_samples:
            raise IndexError(g)
        s = int(np.searchsorted(self._offsets, g, side="right")) - 1
        return self._load(s, g - int(self._offsets[s]))

    def _load(self, s: int, j: int) -> Sample | Skipped:
        shard = self.shards[s]
        key, files = self.index[s][j]
        image_ext = next((e for e in IMAGE_KEYS if e in files), None)
        if image_ext is None:
            return skip_or_raise(f"{shard}/{key}", "no image file in sample", self.strict)
        name = f"{shard}/{key}.{image_ext}"
        try:
            data = {e: _read(shard, *files[e]) for e in (image_ext, "txt", "json", "cls") if e in files}
            img = decode_image(data[image_ext], self.min_size, draft=self.transform.size)
            meta = json.loads(data["json"]) if "json" in data else {}
            if not isinstance(meta, dict):
                raise BadImage("sample .json is not an object")
            if "cls" in data:
                meta["label"] = int(data["cls"].decode().strip())
        except BadImage as exc:
            return skip_or_raise(name, exc.reason, self.strict)
        except (OSError, ValueError) as exc:  # bad json/cls, or the shard changed on disk
            return skip_or_raise(name, f"unreadable sample ({exc})", self.strict)
        if "txt" in data:
            text = data["txt"].decode("utf-8", errors="replace").strip()
        else:
            text = meta.get("text") if isinstance(meta.get("text"), str) else ""
        meta.update(key=key, shard=os.path.basename(shard))
        index = int(self._offsets[s]) + j  # seeds random crop/flip: fixed per sample
        return {"image": self.transform(img, index), "text": text, "meta": meta}


class WebDatasetSamples(Dataset):
    """Map-style view of a `WebDatasetStream`'s shards (item g = its sample g in shard order), for
    sources whose order is set outside, such as a `MixtureDataset`. `blocks`: samples per shard."""

    def __init__(self, stream: WebDatasetStream) -> None:
        self.stream = stream

    def __len__(self) -> int:
        return self.stream.num_samples

    @property
    def blocks(self) -> list[int]:
        return [len(i) for i in self.stream.index]

    def __getitem__(self, g: int) -> Sample | Skipped:
        return self.stream.load(g)


def _read(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"{Path(path).name} is shorter than its index (truncated?)")
    return data
