"""`dialect pretokenize`: ShapeWorld / WebDataset images -> sharded TA-Tok (+ pixel-VQ) ids, read
back equal to direct encoding, resumable, split over ranks."""

import json

import numpy as np
import pytest
import torch

from data.test_sources import _write_shards  # tests/ is on sys.path (rootdir-relative packages)
from detok.micro import codec_cfg, tatok_cfg
from dialect.cli.main import main
from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.data.shards import WebDatasetStream
from dialect.data.tokens import PretokenizedDataset, collate_tokens
from dialect.data.transforms import ImageTransform
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.pretokenize import pretokenize
from dialect.tokenizers.tatok import TATok
from unified.micro import WORLD


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def tatok():
    torch.manual_seed(0)
    return TATok(tatok_cfg()).eval()


def _data(n=10):
    return ShapeWorldDataset(WORLD, seed=0, length=n)


def _direct(tatok, images, scale):
    return tatok.encode_ids(images, scale)


def test_ids_read_back_equal_direct_encoding_with_pixel_ids(tmp_path, tatok):
    torch.manual_seed(1)
    codec = PixelVQ(codec_cfg()).eval()
    index = pretokenize(_data(), tmp_path, tatok, codec, shard_size=4, batch_size=3, log=lambda _: None)
    assert [s["samples"] for s in index["shards"]] == [4, 4, 2] and index["tokens"] == [16, 4, 1]
    ds = PretokenizedDataset(tmp_path)
    assert len(ds) == 10
    batch = collate_tokens([ds[i] for i in range(10)])
    images = collate([_data()[i] for i in range(10)])["image"]
    for k in range(3):
        assert torch.equal(batch[f"tatok_s{k}"], _direct(tatok, images, k))
    assert torch.equal(batch["pixel"], codec.encode_ids(images))
    assert batch["meta"][3]["index"] == 3 and batch["text"][3] == _data()[3]["text"]


def test_interrupted_run_resumes_skipping_finished_shards(tmp_path, tatok):
    def die_after_first(line):
        raise KeyboardInterrupt(line)

    with pytest.raises(KeyboardInterrupt):
        pretokenize(_data(), tmp_path, tatok, shard_size=4, log=die_after_first)
    with pytest.raises(DialectError, match="unfinished"):
        PretokenizedDataset(tmp_path)
    first = (tmp_path / "shard-00000.npz").stat().st_mtime_ns
    written = []
    pretokenize(_data(), tmp_path, tatok, shard_size=4, log=written.append)
    assert len(written) == 2 and (tmp_path / "shard-00000.npz").stat().st_mtime_ns == first
    assert len(PretokenizedDataset(tmp_path)) == 10 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(DialectError, match="shard_size"):
        pretokenize(_data(), tmp_path, tatok, shard_size=5, log=lambda _: None)


def test_index_names_its_tokenizers_and_a_resume_keeps_them(tmp_path, tatok):
    torch.manual_seed(1)
    codec = PixelVQ(codec_cfg()).eval()
    index = pretokenize(_data(4), tmp_path, tatok, codec, shard_size=4, log=lambda _: None)
    assert index["tatok_fingerprint"] == tatok.fingerprint()
    assert index["pixelvq_fingerprint"] == codec.fingerprint()
    torch.manual_seed(2)
    with pytest.raises(DialectError, match="tatok_fingerprint"):
        pretokenize(_data(4), tmp_path, TATok(tatok_cfg()).eval(), codec, shard_size=4, log=lambda _: None)
    ds = PretokenizedDataset(tmp_path)
    ds.require_tokenizer("tatok", tatok.fingerprint(), "here")
    with pytest.raises(DialectError, match="another TA-Tok"):
        ds.require_tokenizer("tatok", "0" * 16, "there")


def test_rank_views_are_disjoint_and_cover_everything(tmp_path, tatok):
    pretokenize(_data(), tmp_path, tatok, shard_size=3, log=lambda _: None)
    full = PretokenizedDataset(tmp_path)
    assert full.blocks == [3, 3, 3, 1]
    seen = []
    for rank in range(3):
        ds = PretokenizedDataset(tmp_path, rank=rank, world_size=3)
        shards = [(ds.global_index(i) // 3) for i in range(len(ds))]  # a block: one shard's run
        assert ds.blocks == [shards.count(b) for b in range(4)] and shards == sorted(shards)
        for i in range(len(ds)):
            g = ds.global_index(i)
            seen.append(g)
            assert torch.equal(ds[i]["tatok_s0"], full[g]["tatok_s0"])
    assert sorted(seen) == list(range(10))
    with pytest.raises(DialectError, match="rank"):
        PretokenizedDataset(tmp_path, rank=3, world_size=3)


def test_webdataset_source_skips_bad_files(tmp_path, tatok):
    pattern = _write_shards(tmp_path, per_shard=(5, 4))  # sample 7 is broken
    transform = ImageTransform(size=16)

    def stream():
        return WebDatasetStream(pattern, transform=transform, rank=0, world_size=1)

    index = pretokenize(stream(), tmp_path / "out", tatok, shard_size=4, log=lambda _: None)
    assert [s["samples"] for s in index["shards"]] == [4, 3, 1]
    ds = PretokenizedDataset(tmp_path / "out")
    good = [s for s in stream()]
    images = collate(good)["image"]
    assert len(ds) == images.shape[0] == 8
    assert torch.equal(collate_tokens([ds[i] for i in range(8)])["tatok_s1"], _direct(tatok, images, 1))
    assert [ds[i]["text"] for i in range(8)] == [f"caption {n}" for n in range(9) if n != 7]


def test_cli_writes_and_refuses_an_endless_source(tmp_path, tatok, capsys):
    tatok.save_pretrained(tmp_path / "tatok")
    args = [
        "pretokenize",
        "--tatok",
        str(tmp_path / "tatok"),
        "--out",
        str(tmp_path / "ids"),
        "--shard-size",
        "4",
    ]
    data = ["data.source=shapeworld", "data.size=16", "world.max_objects=2"]
    assert main([*args, *data, "data.length=6"]) == 0
    assert "6 of 6 samples in 2 shard(s)" in capsys.readouterr().out
    index = json.loads((tmp_path / "ids" / "index.json").read_text())
    assert index["source"]["data"]["length"] == 6
    ids = np.stack([PretokenizedDataset(tmp_path / "ids")[i]["tatok_s0"].numpy() for i in range(6)])
    images = collate([_data(6)[i] for i in range(6)])["image"]
    assert np.array_equal(ids, _direct(tatok, images, 0).numpy())
    assert main([*args, *data]) == 2
    assert "finite data.length" in capsys.readouterr().err
    assert main([*args, "data.source=pretokenized", f"data.path={tmp_path / 'ids'}"]) == 2
    assert "one image source" in capsys.readouterr().err
    assert main(["pretokenize", "--tatok", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
