"""Data: one sample format from ShapeWorld, image folders, JSONL pairs and WebDataset shards;
stored token ids from pretokenized folders (`data.tokens`); sources mixed in ratios (`data.mix`).

Every source yields ``{"image": (3, H, W) float in [-1, 1], "text": str, "meta": dict}`` or, for a
file that cannot be used, a `Skipped(path, reason)` that `collate` drops and lists in
``batch["skipped"]`` (with ``strict=True`` a `DialectError` instead). Start from `build_dataset`
and `build_loader`.
"""

from dialect.data.build import SOURCES, DataConfig, build_dataset, build_loader, build_mixture
from dialect.data.mix import MixtureDataset
from dialect.data.sample import Sample, SkipCounter, Skipped, collate, skip_or_raise
from dialect.data.shards import WebDatasetSamples, WebDatasetStream, expand_shards
from dialect.data.sources import ImageFolderDataset, JsonlDataset, scan_images
from dialect.data.transforms import IMAGE_EXTENSIONS, BadImage, ImageTransform, decode_image, to_rgb

__all__ = [
    "IMAGE_EXTENSIONS",
    "SOURCES",
    "BadImage",
    "DataConfig",
    "ImageFolderDataset",
    "ImageTransform",
    "JsonlDataset",
    "MixtureDataset",
    "Sample",
    "SkipCounter",
    "Skipped",
    "WebDatasetSamples",
    "WebDatasetStream",
    "build_dataset",
    "build_loader",
    "build_mixture",
    "collate",
    "decode_image",
    "expand_shards",
    "scan_images",
    "skip_or_raise",
    "to_rgb",
]
