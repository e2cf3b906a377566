"""`dialect train all`: stage order, skipping trained stages, assembling the model folder."""

import json

import pytest

from dialect.cli.main import main
from dialect.core.errors import DialectError
from dialect.data.tokens import FORMAT, INDEX
from dialect.train import all as train_all_mod
from dialect.train.all import train_all


def _fake_stage(root, stage):
    (root / stage / "model").mkdir(parents=True)
    (root / stage / "model" / "config.json").write_text(json.dumps({"stage": stage}))


def _fake_ids(root, shards=1):
    (root / "ids").mkdir(parents=True, exist_ok=True)
    done = [{"file": f"shard-{i:05d}.npz", "start": i, "samples": 1} for i in range(shards)]
    index = {"format": FORMAT, "num_samples": 2, "shard_size": 1, "shards": done}
    (root / "ids" / INDEX).write_text(json.dumps(index))


def test_trained_stages_are_skipped_and_the_model_is_assembled(tmp_path, monkeypatch):
    for stage in ("encoder", "tatok", "pixelvq", "ardtok", "difdtok"):
        _fake_stage(tmp_path, stage)
    _fake_ids(tmp_path, shards=2)
    ran = []

    class FakeRecipe:
        config_class = dict

        @staticmethod
        def train(cfg):
            ran.append(cfg)
            _fake_stage(tmp_path, "lm")

    monkeypatch.setitem(train_all_mod.RECIPES, "lm", FakeRecipe)
    monkeypatch.setattr(train_all_mod, "load_config", lambda cls, files, overrides: list(overrides))
    lines = []
    model = train_all("tiny", tmp_path, log=lines.append)
    assert len(ran) == 1 and f"tatok={tmp_path / 'tatok' / 'model'}" in ran[0]  # lm reads the run's TA-Tok
    assert f"train.out_dir={tmp_path / 'lm'}" in ran[0]
    assert sum("skipping" in line for line in lines) == 6
    assert json.loads((model / "tar" / "config.json").read_text()) == {"stage": "lm"}
    assert json.loads((model / "ar" / "config.json").read_text()) == {"stage": "ardtok"}
    assert json.loads((model / "diffusion" / "config.json").read_text()) == {"stage": "difdtok"}
    timings = json.loads((model / "timings.json").read_text())
    assert set(timings) == {"lm", "total"}
    # a second call trains nothing
    ran.clear()
    train_all("tiny", tmp_path, log=lines.append)
    assert ran == []


def test_the_ids_stage_runs_until_every_shard_is_written_and_feeds_the_detokenizers(tmp_path, monkeypatch):
    for stage in ("encoder", "tatok", "pixelvq", "lm"):
        _fake_stage(tmp_path, stage)
    _fake_ids(tmp_path, shards=1)  # an interrupted pretokenize: 1 of 2 shards
    ran = {}

    def fake(stage):
        class FakeRecipe:
            config_class = stage

            @staticmethod
            def train(overrides):
                ran[stage] = overrides
                if stage == "ids":
                    _fake_ids(tmp_path, shards=2)
                else:
                    _fake_stage(tmp_path, stage)

        return FakeRecipe

    for stage in ("ids", "ardtok", "difdtok"):
        monkeypatch.setitem(train_all_mod.RECIPES, stage, fake(stage))
    monkeypatch.setattr(train_all_mod, "load_config", lambda cls, files, overrides: list(overrides))
    train_all("tiny", tmp_path, log=lambda line: None)
    assert set(ran) == {"ids", "ardtok", "difdtok"}
    tokenizers = [f"tatok={tmp_path / 'tatok' / 'model'}", f"pixelvq={tmp_path / 'pixelvq' / 'model'}"]
    assert ran["ids"] == [*tokenizers, f"out_dir={tmp_path / 'ids'}"]
    assert f"data.path={tmp_path / 'ids'}" in ran["difdtok"] and tokenizers[0] in ran["difdtok"]
    assert not any(o.startswith("data.path") for o in ran["ardtok"])  # AR-DTok encodes its images
    ran.clear()
    train_all("tiny", tmp_path, log=lambda line: None)
    assert ran == {}


def test_bad_stage_lists_and_overrides_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(DialectError, match="include tatok and lm"):
        train_all("tiny", tmp_path, stages=["encoder", "lm"])
    with pytest.raises(DialectError, match="de-tokenizer"):
        train_all("tiny", tmp_path, stages=["tatok", "lm"])
    with pytest.raises(DialectError, match="list ids too"):
        train_all("tiny", tmp_path, stages=["tatok", "difdtok", "lm"])
    assert main(["train", "all", "--preset", "tiny", "--root", str(tmp_path), "steps=3"]) == 2
    assert "STAGE.key=value" in capsys.readouterr().err
    no_dif = ["--stages", "encoder,tatok,pixelvq,ardtok,lm", "difdtok.train.steps=3"]
    assert main(["train", "all", "--preset", "tiny", "--root", str(tmp_path), *no_dif]) == 2
    assert "not being trained: difdtok" in capsys.readouterr().err
    assert main(["train", "all", "--root", str(tmp_path)]) == 2
