"""Map-style sources over image files: a (recursive) image folder and a JSONL of image + text.

Both return the one sample format (see `dialect.data.sample`) from `__getitem__`, or a `Skipped`
sentinel for a file that cannot be used, so a bad file never stops an epoch; with `strict=True`
they raise :class:`DialectError` naming the file instead. Shuffling and resuming are the sampler's
job (the trainer's), not the dataset's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from dialect.core.errors import DialectError
from dialect.data.sample import Sample, Skipped, skip_or_raise
from dialect.data.transforms import IMAGE_EXTENSIONS, BadImage, ImageTransform, decode_image


class _FileDataset(Dataset):
    """Shared `__getitem__`: decode file i, transform it, attach its text and meta."""

    def __init__(self, transform: ImageTransform, strict: bool, min_size: int):
        self.transform = transform
        self.strict = strict
        self.min_size = min_size

    def _entry(self, index: int) -> tuple[Path, str, dict[str, Any]]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample | Skipped:
        path, text, meta = self._entry(index)
        try:
            img = decode_image(path, self.min_size, draft=self.transform.size)
        except BadImage as exc:
            return skip_or_raise(str(path), exc.reason, self.strict)
        return {"image": self.transform(img, index), "text": text, "meta": meta}


def scan_images(root: str | Path) -> list[Path]:
    """Image files under `root`, recursively, sorted; hidden files and folders are ignored."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(folder) / name)
    return found


class ImageFolderDataset(_FileDataset):
    """Every image under `root` (png/jpg/jpeg/webp/bmp, any depth), sorted by path.

    The caption is the optional sidecar text file with the same stem (`cat.png` -> `cat.txt`),
    stripped; "" when there is none. meta = {"path": path relative to root}.
    """

    def __init__(
        self,
        root: str | Path,
        transform: ImageTransform | None = None,
        strict: bool = False,
        min_size: int = 8,
    ):
        super().__init__(transform or ImageTransform(), strict, min_size)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DialectError(f"image folder not found: {self.root}")
        self.files = scan_images(self.root)
        if not self.files:
            exts = "/".join(e[1:] for e in IMAGE_EXTENSIONS)
            raise DialectError(f"no images ({exts}) found under {self.root}")

    def __len__(self) -> int:
        return len(self.files)

    def _entry(self, index: int) -> tuple[Path, str, dict[str, Any]]:
        path = self.files[index]
        caption = path.with_suffix(".txt")
        text = ""
        if caption.is_file():
            text = caption.read_text(encoding="utf-8", errors="replace").strip()
        return path, text, {"path": str(path.relative_to(self.root))}


class JsonlDataset(_FileDataset):
    """One sample per line of a JSONL file: `{"image": "rel/or/abs.png", "text": "...", ...}`.

    Relative image paths are resolved against the JSONL file's folder. "text" is optional ("" when
    absent); every other key is kept in meta, together with "path" (the image path as written).
    Blank lines are ignored; a malformed line raises `DialectError` naming the file and line.
    A missing image file is skipped like any other unusable file.
    """

    def __init__(
        self,
        path: str | Path,
        transform: ImageTransform | None = None,
        strict: bool = False,
        min_size: int = 8,
    ):
        super().__init__(transform or ImageTransform(), strict, min_size)
        self.path = Path(path)
        if not self.path.is_file():
            raise DialectError(f"JSONL file not found: {self.path}")
        self.entries = read_jsonl(self.path)
        if not self.entries:
            raise DialectError(f"{self.path} has no samples")

    def __len__(self) -> int:
        return len(self.entries)

    def _entry(self, index: int) -> tuple[Path, str, dict[str, Any]]:
        return self.entries[index]


def read_jsonl(path: Path) -> list[tuple[Path, str, dict[str, Any]]]:
    """Parse and validate every line up front, so a bad line fails before training starts."""
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DialectError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DialectError(f"{where}: expected a JSON object, got {type(record).__name__}")
            image = record.pop("image", None)
            if not isinstance(image, str) or not image:
                raise DialectError(f'{where}: needs an "image" key holding a file path')
            text = record.pop("text", "")
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise DialectError(f'{where}: "text" must be a string, got {type(text).__name__}')
            image_path = Path(image).expanduser()
            if not image_path.is_absolute():
                image_path = path.parent / image_path
            entries.append((image_path, text, {"path": image, **record}))
    return entries
