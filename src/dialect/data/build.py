"""`DataConfig` and the two entry points: `build_dataset(cfg)` and `build_loader(dataset, ...)`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.data.shards import WebDatasetStream
from dialect.data.sources import ImageFolderDataset, JsonlDataset
from dialect.data.transforms import CROPS, ImageTransform

if TYPE_CHECKING:
    from dialect.world import WorldConfig

SOURCES = ("shapeworld", "folder", "jsonl", "webdataset")


@dataclass
class DataConfig:
    """Where training images (and texts) come from, and how they are shaped."""

    source: str = "shapeworld"  # shapeworld | folder | jsonl | webdataset
    path: str = ""  # folder, .jsonl file, or shard pattern such as "data/shards-{000..009}.tar"
    size: int = 64  # output side in pixels (for ShapeWorld: the render size, overriding world.size)
    crop: str = "center"  # center | random | none (squash the whole image to size x size)
    flip: bool = False  # random horizontal flip, seeded from (seed, sample index)
    strict: bool = False  # an unusable file raises DialectError instead of being skipped
    min_size: int = 8  # images whose short side is below this many pixels are skipped
    seed: int = 0  # seeds ShapeWorld scenes, random crop/flip and webdataset shuffling
    split: str = "train"  # ShapeWorld split (e.g. train, or the held-out attribute split)
    length: int = 0  # ShapeWorld samples per epoch; 0 means effectively infinite (2**31 - 1)
    shuffle: bool = True  # webdataset only: permute shards and samples per pass (map-style: sampler)


def transform_for(cfg: DataConfig) -> ImageTransform:
    return ImageTransform(size=cfg.size, crop=cfg.crop, flip=cfg.flip, seed=cfg.seed)


def build_dataset(cfg: DataConfig, world: WorldConfig | None = None) -> Dataset:
    """The dataset `cfg` describes: map-style for shapeworld/folder/jsonl; for webdataset a
    resumable `WebDatasetStream` that repeats pass after pass (set its `batch_size` to the
    loader's when using workers; `build_loader` does). Bad settings or paths -> DialectError."""
    _validate(cfg)
    if cfg.source == "shapeworld":
        from dialect.data.shapeworld import ShapeWorldDataset
        from dialect.world import WorldConfig

        length = cfg.length or 2**31 - 1
        world = replace(world or WorldConfig(), size=cfg.size)
        return ShapeWorldDataset(world, seed=cfg.seed, length=length, split=cfg.split)
    kwargs: dict[str, Any] = {"transform": transform_for(cfg), "strict": cfg.strict, "min_size": cfg.min_size}
    if cfg.source == "folder":
        return ImageFolderDataset(cfg.path, **kwargs)
    if cfg.source == "jsonl":
        return JsonlDataset(cfg.path, **kwargs)
    return WebDatasetStream(cfg.path, shuffle=cfg.shuffle, seed=cfg.seed, repeat=True, **kwargs)


def _validate(cfg: DataConfig) -> None:
    if cfg.source not in SOURCES:
        raise DialectError(f"data.source must be one of {', '.join(SOURCES)}; got {cfg.source!r}")
    if cfg.crop not in CROPS:
        raise DialectError(f"data.crop must be one of {', '.join(CROPS)}; got {cfg.crop!r}")
    if cfg.size < 1 or cfg.min_size < 1:
        raise DialectError(f"data.size and data.min_size must be >= 1; got {cfg.size}, {cfg.min_size}")
    if cfg.length < 0:
        raise DialectError("data.length must be >= 0")
    if cfg.source != "shapeworld":
        if not cfg.path:
            raise DialectError(f"data.path is required for source {cfg.source!r}")
        if cfg.source != "webdataset" and not Path(cfg.path).exists():
            raise DialectError(f"data.path does not exist: {cfg.path}")


class _StreamLoader(DataLoader):
    """A DataLoader that reports each batch it hands out to its `WebDatasetStream`."""

    def __iter__(self):
        for batch in super().__iter__():
            self.dataset.advance(batch["num_samples"])
            yield batch
        # Reached only when the pass ran out (not on an early break): a tail dropped by
        # drop_last still belongs to this pass, so the next iter() starts the next one.
        self.dataset.end_pass()


def build_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader with `collate` (skipped files dropped and listed in `batch["skipped"]`).

    Map-style datasets follow `sampler` (the trainer's resumable sampler; None = in order).
    A `WebDatasetStream` is told the batch size (so workers deal whole batches in stream order)
    and advanced by every batch handed out, so `dataset.state_dict()` is always the resume point.
    """
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "collate_fn": collate,
        "drop_last": drop_last,
        "pin_memory": pin_memory,
    }
    if isinstance(dataset, WebDatasetStream):
        if sampler is not None:
            raise ValueError("a WebDatasetStream orders itself; it takes no sampler")
        dataset.batch_size = batch_size
        return _StreamLoader(dataset, **common)
    if isinstance(dataset, IterableDataset):
        return DataLoader(dataset, **common)
    return DataLoader(dataset, sampler=sampler, **common)
