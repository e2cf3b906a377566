"""`DataConfig` and the two entry points: `build_dataset(cfg)` and `build_loader(dataset, ...)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from dialect.core.config import config_from_dict
from dialect.core.errors import DialectError
from dialect.data.mix import MIX_BY, MixtureDataset
from dialect.data.sample import collate
from dialect.data.shards import WebDatasetSamples, WebDatasetStream
from dialect.data.sources import ImageFolderDataset, JsonlDataset
from dialect.data.tokens import MAKE_FOLDER, PretokenizedDataset
from dialect.data.transforms import CROPS, ImageTransform

if TYPE_CHECKING:
    from dialect.world import WorldConfig

SOURCES = ("shapeworld", "folder", "jsonl", "webdataset", "pretokenized")


@dataclass
class DataConfig:
    """Where training images (and texts) come from, and how they are shaped.

    `source: pretokenized` reads the ids a `dialect pretokenize` folder (`path`) stored instead of
    images: the LM and de-tokenizer recipes train on them without re-encoding (and refuse a folder
    made by another TA-Tok or pixel VQ than the run's).

    `mix` samples several sources in fixed ratios (`dialect.data.mix` has the exact stream: seeded,
    every source read without replacement, resumed from the trainer's position, split over DDP
    ranks like any dataset). Each entry is this section with the entry's keys on top, plus its
    `ratio` (> 0; normalised over the entries); `source` and `path` of the section itself are then
    unused, and every entry must keep `size`. For example, in a run's YAML:

        data:
          size: 64
          seed: 0                 # seeds the mixture (and each entry that sets no seed of its own)
          mix_by: sample          # or batch: every loader batch from one source
          mix:
            - {source: shapeworld, ratio: 0.7}
            - {source: webdataset, path: "shards/train-{000..009}.tar", ratio: 0.3}

    Pretokenized folders mix only with each other (a batch holds ids or images, not both).
    """

    source: str = "shapeworld"  # shapeworld | folder | jsonl | webdataset | pretokenized
    path: str = ""  # folder, .jsonl file, shard pattern such as "data/shards-{000..009}.tar", or ids folder
    size: int = 64  # output side in pixels (for ShapeWorld: the render size, overriding world.size)
    crop: str = "center"  # center | random | none (squash the whole image to size x size)
    flip: bool = False  # random horizontal flip, seeded from (seed, sample index)
    strict: bool = False  # an unusable file raises DialectError instead of being skipped
    min_size: int = 8  # images whose short side is below this many pixels are skipped
    seed: int = 0  # seeds ShapeWorld scenes, random crop/flip, webdataset shuffling and the mixture
    split: str = "train"  # ShapeWorld split (e.g. train, or the held-out attribute split)
    length: int = 0  # ShapeWorld samples per epoch; 0 means effectively infinite (2**31 - 1)
    shuffle: bool = True  # webdataset: permute shards and samples per pass; in a mix: permute this
    # source each pass (a single map-style source is ordered by the trainer's sampler)
    mix: list[dict[str, Any]] = field(default_factory=list)  # sources with ratios (see above); [] = source
    mix_by: str = "sample"  # sample | batch: draw the source of each sample, or of each loader batch


def transform_for(cfg: DataConfig) -> ImageTransform:
    return ImageTransform(size=cfg.size, crop=cfg.crop, flip=cfg.flip, seed=cfg.seed)


def build_dataset(cfg: DataConfig, world: WorldConfig | None = None) -> Dataset:
    """The dataset `cfg` describes: map-style for shapeworld/folder/jsonl/pretokenized; for
    webdataset a resumable `WebDatasetStream` that repeats pass after pass (set its `batch_size` to
    the loader's when using workers; `build_loader` does); with `mix`, an endless `MixtureDataset`
    of the entries (webdataset shards read map-style). Bad settings or paths -> DialectError."""
    if cfg.mix:
        return build_mixture(cfg, lambda d: _build_source(d, world, in_mix=True))
    return _build_source(cfg, world, in_mix=False)


def _build_source(cfg: DataConfig, world: WorldConfig | None, in_mix: bool) -> Dataset:
    _validate(cfg)
    if cfg.source == "shapeworld":
        from dialect.data.shapeworld import ShapeWorldDataset
        from dialect.world import WorldConfig

        length = cfg.length or 2**31 - 1
        world = replace(world or WorldConfig(), size=cfg.size)
        return ShapeWorldDataset(world, seed=cfg.seed, length=length, split=cfg.split)
    if cfg.source == "pretokenized":
        stored = PretokenizedDataset(cfg.path)
        if len(stored) == 0:
            raise DialectError(f"{cfg.path} holds no samples (every source file was unusable?)")
        return stored
    kwargs: dict[str, Any] = {"transform": transform_for(cfg), "strict": cfg.strict, "min_size": cfg.min_size}
    if cfg.source == "folder":
        return ImageFolderDataset(cfg.path, **kwargs)
    if cfg.source == "jsonl":
        return JsonlDataset(cfg.path, **kwargs)
    if in_mix:
        return WebDatasetSamples(WebDatasetStream(cfg.path, rank=0, world_size=1, **kwargs))
    return WebDatasetStream(cfg.path, shuffle=cfg.shuffle, seed=cfg.seed, repeat=True, **kwargs)


def mix_entries(cfg: DataConfig) -> list[tuple[DataConfig, float]]:
    """`cfg.mix` as (full DataConfig, ratio) pairs: this section's settings under each entry's keys.
    A malformed entry, a nested mix, a changed size or pretokenized folders mixed with image sources
    -> DialectError."""
    if cfg.mix_by not in MIX_BY:
        raise DialectError(f"data.mix_by must be one of {', '.join(MIX_BY)}; got {cfg.mix_by!r}")
    base = {k: v for k, v in asdict(cfg).items() if k not in ("mix", "mix_by")}
    entries = []
    for n, entry in enumerate(cfg.mix):
        where = f"data.mix[{n}]"
        entry = dict(entry)
        ratio = entry.pop("ratio", None)
        if "mix" in entry or "mix_by" in entry:
            raise DialectError(f"{where}: an entry cannot hold another mix")
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < float("inf"):
            raise DialectError(f"{where} needs a ratio > 0 (e.g. ratio: 0.3), got {ratio!r}")
        sub = config_from_dict(DataConfig, {**base, **entry}, source=where)
        if sub.size != cfg.size:
            raise DialectError(
                f"{where}.size={sub.size} differs from data.size={cfg.size}; batches need one size"
            )
        entries.append((sub, float(ratio)))
    if len({d.source == "pretokenized" for d, _ in entries}) > 1:
        raise DialectError(
            "data.mix cannot mix pretokenized folders with image sources (a batch holds ids or images)"
        )
    return entries


def build_mixture(cfg: DataConfig, build: Callable[[DataConfig], Dataset]) -> MixtureDataset:
    """A `MixtureDataset` of `build(entry)` for every entry of `cfg.mix` (recipes pass their own
    `build`, e.g. the LM's task samples), seeded with `cfg.seed`."""
    entries = mix_entries(cfg)
    return MixtureDataset(
        [build(d) for d, _ in entries], [r for _, r in entries], seed=cfg.seed, by=cfg.mix_by,
        shuffle=[d.shuffle for d, _ in entries],
    )  # fmt: skip


def is_pretokenized(cfg: DataConfig) -> bool:
    """Whether `cfg` reads stored ids (a pretokenized folder, or a mix of them)."""
    sources = [d.source for d, _ in mix_entries(cfg)] if cfg.mix else [cfg.source]
    return all(s == "pretokenized" for s in sources)


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
            hint = f"; {MAKE_FOLDER}" if cfg.source == "pretokenized" else ""
            raise DialectError(f"data.path does not exist: {cfg.path}{hint}")


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

    Map-style datasets follow `sampler` (the trainer's resumable sampler; None = in order); a
    `MixtureDataset` is told the batch size (its unit with `mix_by=batch`).
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
    if isinstance(dataset, MixtureDataset):
        dataset.batch_size = batch_size  # the unit of mix_by=batch: one source per loader batch
    return DataLoader(dataset, sampler=sampler, **common)
