"""Data: one sample format from ShapeWorld, image folders, JSONL pairs and WebDataset shards.

Every source yields ``{"image": (3, H, W) float in [-1, 1], "text": str, "meta": dict}`` or, for a
file that cannot be used, a `Skipped(path, reason)` that `collate` drops and lists in
``batch["skipped"]`` (with ``strict=True`` a `DialectError` instead). Start from `build_dataset`
and `build_loader`.
"""

from dialect.data.build import SOURCES, DataConfig, build_dataset, build_loader
from dialect.data.sample import Sample, SkipCounter, Skipped, collate, skip_or_raise
from dialect.data.shards import WebDatasetStream, expand_shards
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
    "Sample",
    "SkipCounter",
    "Skipped",
    "WebDatasetStream",
    "build_dataset",
    "build_loader",
    "collate",
    "decode_image",
    "expand_shards",
    "scan_images",
    "skip_or_raise",
    "to_rgb",
]
