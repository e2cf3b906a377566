"""data.mix: sources sampled in ratios -- ratios held, seeded, without replacement per source,
split over ranks, resumed exactly by the trainer; config entries validated."""

import json
from collections import Counter

import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from data.test_sources import _write_shards  # tests/ is on sys.path (rootdir-relative packages)
from dialect.core.config import config_from_dict
from dialect.core.errors import DialectError
from dialect.data import DataConfig, MixtureDataset, build_dataset, build_loader
from dialect.data.order import WINDOW, shuffled_order
from dialect.train import Trainer
from dialect.train.checkpoint import seed_everything
from dialect.train.sampler import ResumableSampler
from dialect.world import make_example
from train.test_trainer import _cfg, _Interrupted, _model, _rows
from unified.micro import WORLD


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Micro models train here: one intra-op thread (see tests/conftest.py)."""
    yield


class Items(Dataset):
    """n tiny samples named by source and index."""

    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": torch.zeros(3, 2, 2), "text": f"{self.name}{i}", "meta": {"src": self.name, "i": i}}


def _mix(seed=0, by="sample", batch_size=1, ratios=(0.5, 0.3, 0.2), sizes=(7, 13, 50)):
    sources = [Items(name, n) for name, n in zip("abc", sizes, strict=False)]
    return MixtureDataset(sources, list(ratios), seed=seed, by=by, batch_size=batch_size)


@pytest.mark.parametrize("n", [20_000, 1_234])
def test_per_sample_mix_hits_its_ratios(n):
    mix = _mix()
    counts = Counter(mix.locate(i)[0] for i in range(n))
    for s, r in enumerate((0.5, 0.3, 0.2)):
        assert abs(counts[s] / n - r) < (0.0005 if n % 1000 == 0 else 0.03), counts


def test_per_batch_mix_draws_whole_batches_from_one_source():
    mix = _mix(by="batch", batch_size=8)
    units = [[mix.locate(u * 8 + j)[0] for j in range(8)] for u in range(3000)]
    assert all(len(set(u)) == 1 for u in units)
    counts = Counter(u[0] for u in units)
    for s, r in enumerate((0.5, 0.3, 0.2)):
        assert abs(counts[s] / 3000 - r) < 0.01, counts
    # within a unit the source's own positions are consecutive, so a batch is contiguous in it
    ks = [mix.locate(8 * 5 + j)[1] for j in range(8)]
    assert ks == list(range(ks[0], ks[0] + 8)) and ks[0] % 8 == 0


def test_mix_is_deterministic_given_the_seed():
    a, b, c = _mix(seed=3), _mix(seed=3), _mix(seed=4)
    stream = [a[i]["text"] for i in range(500)]
    assert stream == [b[i]["text"] for i in range(500)]
    assert stream != [c[i]["text"] for i in range(500)]
    assert [a[i]["text"] for i in range(400, 500)] == stream[400:]  # random access: same items


def test_every_source_is_read_without_replacement_pass_after_pass():
    mix = _mix()
    seen = {name: [] for name in "abc"}
    for i in range(3000):
        item = mix[i]
        seen[item["meta"]["src"]].append(item["meta"]["i"])
    for name, n in zip("abc", (7, 13, 50), strict=True):
        passes = [seen[name][p * n : (p + 1) * n] for p in range(len(seen[name]) // n)]
        assert len(passes) >= 3 and all(sorted(p) == list(range(n)) for p in passes)
        assert passes[0] != passes[1]  # reshuffled each pass


def test_shard_aware_order_keeps_windows_of_whole_shards():
    blocks = [5, 3, 4] * 7  # 21 shards: windows of 8, 8 and 5 shards
    order = shuffled_order(sum(blocks), seed=1, epoch=0, blocks=blocks)
    assert sorted(order.tolist()) == list(range(sum(blocks)))
    shard_of = torch.repeat_interleave(torch.arange(len(blocks)), torch.tensor(blocks))[order].tolist()
    done, pos = set(), 0
    while pos < len(order):  # each window: WINDOW whole shards (fewer at the end), none seen before
        want = min(WINDOW, len(blocks) - len(done))
        members, end = set(), pos
        while len(members) < want or end - pos < sum(blocks[b] for b in members):
            members.add(shard_of[end])
            end += 1
            assert len(members) <= want
        assert not members & done
        done |= members
        pos = end
    assert len(done) == len(blocks)
    assert not torch.equal(order, shuffled_order(sum(blocks), seed=1, epoch=1, blocks=blocks))


def test_ranks_split_the_mixed_stream():
    mix = _mix()
    full = ResumableSampler(len(mix), 8, seed=5)
    r0 = ResumableSampler(len(mix), 8, rank=0, world_size=2, seed=5)
    r1 = ResumableSampler(len(mix), 8, rank=1, world_size=2, seed=5)
    it, i0, i1 = iter(full), iter(r0), iter(r1)
    for _ in range(20):
        batch = [mix.locate(next(it)) for _ in range(8)]
        assert batch == [mix.locate(next(i)) for i in (i0,) * 4 + (i1,) * 4]


# ------------------------------------------------------------------ from the config, in the trainer


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    rows = []
    for i in range(6):
        Image.fromarray(make_example(100 + i, 0, WORLD)["image"]).save(root / f"{i}.png")
        rows.append({"image": f"{i}.png", "text": f"pair {i}"})
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return str(root / "pairs.jsonl")


def _data(jsonl, **kw):
    mix = [
        {"source": "shapeworld", "ratio": 0.7, "seed": 1},
        {"source": "jsonl", "path": jsonl, "ratio": 0.3},
    ]
    return config_from_dict(DataConfig, {"size": 16, "seed": 2, "mix": mix, **kw})


def test_config_builds_a_mixture_of_its_entries(jsonl, tmp_path):
    ds = build_dataset(_data(jsonl, mix_by="batch"), WORLD)
    assert isinstance(ds, MixtureDataset) and ds.by == "batch" and ds.ratios == pytest.approx([0.7, 0.3])
    loader = iter(build_loader(ds, batch_size=4))
    assert ds.batch_size == 4
    texts = [next(loader)["text"] for _ in range(30)]
    pairs = [t for t in texts if t[0].startswith("pair")]
    assert all(all(x.startswith("pair") for x in t) for t in pairs) and 3 <= len(pairs) <= 16
    # webdataset shards take part too, read map-style
    pattern = _write_shards(tmp_path)
    data = _data(jsonl)
    data.mix[1] = {"source": "webdataset", "path": pattern, "ratio": 0.3}
    batch = next(iter(build_loader(build_dataset(data, WORLD), batch_size=40)))
    assert batch["image"].shape[1:] == (3, 16, 16)
    assert 3 <= sum(t.startswith("caption") for t in batch["text"]) + len(batch["skipped"]) <= 25


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"source": "shapeworld"}, "needs a ratio > 0"),
        ({"source": "shapeworld", "ratio": 0}, "needs a ratio > 0"),
        ({"source": "shapeworld", "ratio": 1, "ratoi": 1}, "ratoi"),
        ({"source": "shapeworld", "ratio": 1, "size": 32}, "batches need one size"),
        ({"source": "shapeworld", "ratio": 1, "mix": []}, "another mix"),
        ({"source": "pretokenized", "path": ".", "ratio": 1}, "cannot mix pretokenized"),
        ({"source": "folder", "ratio": 1}, "data.path is required"),
    ],
)
def test_bad_mix_entries_are_one_line_errors(jsonl, entry, message):
    data = _data(jsonl)
    data.mix.append(entry)
    with pytest.raises(DialectError, match=message):
        build_dataset(data, WORLD)


def test_bad_mix_by_is_an_error(jsonl):
    with pytest.raises(DialectError, match="mix_by"):
        build_dataset(_data(jsonl, mix_by="epoch"), WORLD)


def test_trainer_resumes_a_mixture_exactly(jsonl, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    data = _data(jsonl)
    seed_everything(5)
    Trainer(_model(), build_dataset(data, WORLD), _cfg(straight)).fit()
    seed_everything(5)
    with pytest.raises(KeyboardInterrupt):
        _Interrupted(_model(), build_dataset(data, WORLD), _cfg(broken)).fit()
    seed_everything(999)
    Trainer(_model(seed=7), build_dataset(data, WORLD), _cfg(broken)).fit()
    assert [r["loss"] for r in _rows(straight)] == [r["loss"] for r in _rows(broken)]
    # the loader of a resumed run starts exactly where the interrupted one stopped
    trainer = Trainer(_model(), build_dataset(data, WORLD), _cfg(tmp_path / "again"))
    fresh = iter(trainer._loader())
    stream = [next(fresh)["text"] for _ in range(6)]
    trainer.batches_seen = 4
    resumed = iter(trainer._loader())
    assert [next(resumed)["text"] for _ in range(2)] == stream[4:]
