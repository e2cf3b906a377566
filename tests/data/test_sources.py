"""Folder, JSONL and WebDataset sources: bad files skipped (or strict errors), resume, rank split."""

import io
import itertools
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dialect.core.errors import DialectError
from dialect.data import (
    DataConfig,
    ImageFolderDataset,
    JsonlDataset,
    SkipCounter,
    WebDatasetStream,
    build_dataset,
    build_loader,
    collate,
)

S = 16


def _png_bytes(seed: int, w: int = 24, h: int = 20, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, fmt)
    return buf.getvalue()


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "imgs"
    _write(root / "a_good.png", _png_bytes(0))
    _write(root / "a_good.txt", "  a red thing\n")
    _write(root / "sub" / "b_good.jpg", _png_bytes(1, 30, 18, fmt="JPEG"))
    _write(root / "sub" / "deeper" / "c_good.webp", _png_bytes(2, 12, 40, mode="RGBA", fmt="WEBP"))
    _write(root / "d_good.bmp", _png_bytes(3, 16, 16, mode="L", fmt="BMP"))
    jpeg = _png_bytes(4, 64, 64, fmt="JPEG")
    _write(root / "bad_truncated.jpg", jpeg[: len(jpeg) // 2])
    _write(root / "bad_text.png", "just some text, not a picture\n")
    _write(root / "bad_tiny.png", _png_bytes(5, 1, 1))
    _write(root / "notes.md", "ignored: not an image extension")
    _write(root / ".hidden" / "e.png", _png_bytes(6))
    return root


def test_folder_skips_bad_files_and_yields_good_ones(messy_folder):
    ds = build_dataset(DataConfig(source="folder", path=str(messy_folder), size=S))
    assert isinstance(ds, ImageFolderDataset) and len(ds) == 7
    loader = DataLoader(ds, batch_size=3, collate_fn=collate)
    images, texts, skipped, counter = [], [], [], SkipCounter()
    for batch in loader:
        assert batch["image"].shape[1:] == (3, S, S)
        images.append(batch["image"])
        texts += batch["text"]
        skipped += batch["skipped"]
        counter.update(batch)
    images = torch.cat(images)
    assert images.shape == (4, 3, S, S)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.1
    assert sorted(texts) == ["", "", "", "a red thing"]
    reasons = {Path(p).name: r for p, r in skipped}
    assert reasons == {
        "bad_truncated.jpg": "truncated image",
        "bad_text.png": "not an image",
        "bad_tiny.png": "too small (1x1)",
    }
    assert counter.summary().startswith("skipped 3 files: ")


def test_folder_strict_names_the_file(messy_folder):
    ds = build_dataset(DataConfig(source="folder", path=str(messy_folder), size=S, strict=True))
    with pytest.raises(DialectError, match=r"bad_text\.png: not an image"):
        list(DataLoader(ds, batch_size=4, collate_fn=collate))


def test_folder_min_size_and_config_errors(messy_folder, tmp_path):
    ds = build_dataset(DataConfig(source="folder", path=str(messy_folder), size=S, min_size=21))
    reasons = {
        Path(s.path).name: s.reason for s in (ds[i] for i in range(len(ds))) if not isinstance(s, dict)
    }
    assert reasons["a_good.png"] == "too small (24x20)" and reasons["c_good.webp"] == "too small (12x40)"
    (tmp_path / "empty").mkdir()
    bad = [
        (DataConfig(source="folder", path=str(tmp_path / "empty")), "no images"),
        (DataConfig(source="folder", path=str(tmp_path / "missing")), "does not exist"),
        (DataConfig(source="folder"), "data.path is required"),
        (DataConfig(source="imagenet", path="x"), "data.source must be one of"),
        (DataConfig(source="folder", path=str(messy_folder), crop="middle"), "data.crop"),
        (DataConfig(source="webdataset", path=str(tmp_path / "s-{0..1}.tar")), "shards not found"),
    ]
    for cfg, message in bad:
        with pytest.raises(DialectError, match=message):
            build_dataset(cfg)


def test_jsonl_relative_paths_text_and_missing_image(tmp_path):
    _write(tmp_path / "images" / "x.png", _png_bytes(0))
    absolute = _write(tmp_path / "elsewhere" / "y.jpg", _png_bytes(1, fmt="JPEG"))
    lines = [
        {"image": "images/x.png", "text": "a cat", "label": 3},
        {"image": str(absolute), "text": "a dog"},
        {"image": "images/gone.png", "text": "lost"},
        {"image": "images/x.png"},
    ]
    path = _write(tmp_path / "data" / ".." / "pairs.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n\n")
    ds = build_dataset(DataConfig(source="jsonl", path=str(path), size=S))
    assert isinstance(ds, JsonlDataset) and len(ds) == 4
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["image"].shape == (3, 3, S, S)
    assert batch["text"] == ["a cat", "a dog", ""]
    assert batch["meta"][0] == {"path": "images/x.png", "label": 3}
    assert [(Path(p).name, r) for p, r in batch["skipped"]] == [("gone.png", "missing file")]
    strict = JsonlDataset(path, strict=True)
    with pytest.raises(DialectError, match=r"gone\.png: missing file"):
        strict[2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"image": "x.png", "text": "oops"', "line 3: malformed JSON"),
        ('["x.png"]', "line 3: expected a JSON"),
        ('{"text": "no image"}', 'line 3: needs an "image"'),
        ('{"image": "x.png", "text": 5}', 'line 3: "text"'),
    ],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path, line, message):
    good = json.dumps({"image": "x.png", "text": "fine"})
    path = _write(tmp_path / "bad.jsonl", f"{good}\n\n{line}\n{good}\n")
    with pytest.raises(DialectError, match=message) as info:
        JsonlDataset(path)
    assert "bad.jsonl" in str(info.value)


def _write_shards(folder: Path, per_shard=(5, 5)) -> str:
    """Shards shards-000.tar ... each sample: png + txt, every third also json; one broken image."""
    n = 0
    for s, count in enumerate(per_shard):
        with tarfile.open(folder / f"shards-{s:03d}.tar", "w") as tar:
            for _ in range(count):
                files = {"png": _png_bytes(n), "txt": f"caption {n}".encode()}
                if n % 3 == 0:
                    files["json"] = json.dumps({"n": n}).encode()
                if n == 7:
                    files["png"] = b"not a png at all"
                for ext, data in files.items():
                    info = tarfile.TarInfo(f"{n:06d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                n += 1
    return str(folder / f"shards-{{000..{len(per_shard) - 1:03d}}}.tar")


def _texts(items):
    return [s["text"] if isinstance(s, dict) else s.path for s in items]


def test_webdataset_reads_shards_with_texts(tmp_path):
    pattern = _write_shards(tmp_path)
    ds = build_dataset(DataConfig(source="webdataset", path=pattern, size=S, shuffle=False))
    assert isinstance(ds, WebDatasetStream) and ds.num_samples == 10 and ds.repeat
    batch = collate(list(itertools.islice(ds, 10)))
    assert batch["image"].shape == (9, 3, S, S)
    assert batch["text"] == [f"caption {n}" for n in range(10) if n != 7]
    assert batch["meta"][0] == {"n": 0, "key": "000000", "shard": "shards-000.tar"}
    assert batch["skipped"] == [(f"{tmp_path}/shards-001.tar/000007.png", "not an image")]


def test_webdataset_resume_skips_consumed(tmp_path):
    pattern = _write_shards(tmp_path)
    full = _texts(WebDatasetStream(pattern, shuffle=True, seed=1))
    assert sorted(full) != full or full != _texts(WebDatasetStream(pattern))  # shuffled
    ds = WebDatasetStream(pattern, shuffle=True, seed=1)
    it = iter(ds)
    first = [next(it) for _ in range(4)]
    ds.advance(len(first))
    resumed = WebDatasetStream(pattern, shuffle=True, seed=1)
    resumed.load_state_dict(ds.state_dict())
    assert resumed.state_dict() == {"consumed": 4}
    assert _texts(first) + _texts(resumed) == full
    resumed.advance(6)  # pass 0 done: the next iter() is pass 1, in a new order
    second_pass = _texts(resumed)
    assert sorted(second_pass) == sorted(full) and second_pass != full


def test_webdataset_two_ranks_partition_samples(tmp_path):
    pattern = _write_shards(tmp_path, per_shard=(5, 4, 3))
    ranks = [_texts(WebDatasetStream(pattern, shuffle=True, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 6
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(_texts(WebDatasetStream(pattern)))
    three = [_texts(WebDatasetStream(pattern, rank=r, world_size=5)) for r in range(5)]
    assert all(len(t) == 2 for t in three)  # 12 samples / 5 ranks: tail of 2 dropped, lengths equal


def test_webdataset_loader_workers_keep_order_and_resume(tmp_path):
    pattern = _write_shards(tmp_path, per_shard=(4, 3))
    expected = _texts(WebDatasetStream(pattern, shuffle=True))
    ds = WebDatasetStream(pattern, shuffle=True)
    loader = build_loader(ds, batch_size=2, num_workers=2)
    got, it = [], iter(loader)
    for _ in range(2):
        batch = next(it)
        got.append(set(batch["text"] + [p for p, _ in batch["skipped"]]))
    assert ds.state_dict() == {"consumed": 4}
    del it
    for batch in build_loader(ds, batch_size=2, num_workers=2):  # resumes mid-pass
        got.append(set(batch["text"] + [p for p, _ in batch["skipped"]]))
    # batches come back in stream order although two workers made them
    assert got == [set(expected[i : i + 2]) for i in range(0, 7, 2)]
    assert ds.state_dict() == {"consumed": 7}
    dropped = build_loader(ds, batch_size=2, drop_last=True)
    assert sum(b["num_samples"] for b in dropped) == 6 and ds.state_dict() == {"consumed": 14}


def test_webdataset_repeat_runs_pass_after_pass_and_resumes(tmp_path):
    pattern = _write_shards(tmp_path, per_shard=(3, 3))
    once = WebDatasetStream(pattern, shuffle=True, seed=2)
    pass0 = _texts(once)
    once.advance(6)
    pass1 = _texts(once)
    forever = WebDatasetStream(pattern, shuffle=True, seed=2, repeat=True)
    assert _texts(itertools.islice(forever, 12)) == pass0 + pass1 and pass0 != pass1
    forever.load_state_dict({"consumed": 8})  # what a trainer restores: batches seen x batch size
    assert _texts(itertools.islice(forever, 4)) == pass1[2:]
