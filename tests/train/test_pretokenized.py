"""Training from a pretokenized folder: Tar, AR-DTok and Dif-DTok read stored ids (never images),
learn from them exactly as from the images, and refuse ids made by another tokenizer."""

import json

import pytest
import torch

from detok.micro import codec_cfg, tatok_cfg  # tests/ is on sys.path (rootdir-relative packages)
from dialect.core.errors import DialectError
from dialect.data import DataConfig, MixtureDataset, collate
from dialect.data.shapeworld import ShapeWorldDataset
from dialect.data.tokens import PretokenizedDataset
from dialect.detok.ar import ARDTok, ARDTokConfig
from dialect.detok.diffusion import DifDTok, DifDTokConfig
from dialect.lm import LMConfig
from dialect.tokenizers.pixelvq import PixelVQ
from dialect.tokenizers.pretokenize import pretokenize
from dialect.tokenizers.tatok import TATok
from dialect.train import TrainConfig
from dialect.train.pretokenized import PretokenizedTasks
from dialect.train.recipes import ardtok, autoencoder, difdtok, lm
from dialect.unified import Tar, TarConfig, TaskConfig
from unified.micro import WORLD, tar

N = 48


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Saved micro TA-Tok and pixel VQ, and the ids of 48 ShapeWorld samples in 3 shards."""
    root = tmp_path_factory.mktemp("stored")
    torch.manual_seed(0)
    tatok, codec = TATok(tatok_cfg()).eval(), PixelVQ(codec_cfg()).eval()
    tatok.save_pretrained(root / "tatok")
    codec.save_pretrained(root / "pixelvq")
    data = ShapeWorldDataset(WORLD, seed=0, length=N)
    pretokenize(data, root / "ids", tatok, codec, shard_size=16, log=lambda _: None)
    pretokenize(data, root / "ids_only", tatok, shard_size=16, log=lambda _: None)
    torch.manual_seed(1)
    TATok(tatok_cfg()).save_pretrained(root / "other_tatok")
    PixelVQ(codec_cfg()).save_pretrained(root / "other_pixelvq")
    return root


def _train(tmp_path, steps=30, **kw):
    base = dict(
        out_dir=str(tmp_path / "run"), steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, log_every=5,
        ckpt_every=1000, progress=False, precision="fp32", device="cpu",
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _stored(folders, name="ids"):
    return DataConfig(source="pretokenized", path=str(folders / name), size=16)


def _losses(tmp_path):
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(r)["loss"] for r in rows]


def _lm_run(folders, tmp_path, **kw):
    model = TarConfig(lm=LMConfig(dim=64, depth=2, heads=2, max_len=96))
    base = dict(model=model, tatok=str(folders / "tatok"), data=_stored(folders), world=WORLD)
    return lm.LMRun(**{**base, "train": _train(tmp_path), **kw})


def _ar_run(folders, tmp_path, **kw):
    model = ARDTokConfig(lm=LMConfig(dim=32, depth=2, heads=2), cond_drop=0.0)
    base = dict(model=model, tatok=str(folders / "tatok"), pixelvq=str(folders / "pixelvq"))
    return ardtok.ARDTokRun(
        **{**base, "data": _stored(folders), "world": WORLD, "train": _train(tmp_path), **kw}
    )


def test_lm_loss_falls_training_from_stored_ids(folders, tmp_path, monkeypatch):
    monkeypatch.setattr(TATok, "encode", _never)  # not one image is encoded
    lm.train(_lm_run(folders, tmp_path))
    losses = _losses(tmp_path)
    assert losses[-1] < 0.7 * losses[0], losses
    saved = Tar.from_pretrained(tmp_path / "run" / "model")  # an ordinary Tar folder
    assert type(saved.tatok) is TATok
    ref = TATok.from_pretrained(folders / "tatok").state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in saved.tatok.state_dict().items())


def test_ardtok_loss_falls_training_from_stored_ids(folders, tmp_path, monkeypatch):
    monkeypatch.setattr(TATok, "encode", _never)
    monkeypatch.setattr(PixelVQ, "encode", _never)
    ardtok.train(_ar_run(folders, tmp_path, train=_train(tmp_path, lr=1e-2)))
    losses = _losses(tmp_path)
    assert losses[-1] < 0.6 * losses[0], losses
    assert (tmp_path / "run" / "samples").is_dir()  # sample grids drawn from stored ids too
    ARDTok.from_pretrained(tmp_path / "run" / "model")


def test_difdtok_trains_from_stored_ids_in_latent_space_only(folders, tmp_path):
    model = DifDTokConfig(image_size=16, patch_size=2, dim=32, depth=1, heads=2, sample_steps=2)
    base = dict(model=model, tatok=str(folders / "tatok"), pixelvq=str(folders / "pixelvq"))
    run = difdtok.DifDTokRun(**base, data=_stored(folders), world=WORLD, train=_train(tmp_path, steps=2))
    difdtok.train(run)
    DifDTok.from_pretrained(tmp_path / "run" / "model")
    run.model.space = "pixel"
    with pytest.raises(DialectError, match="space=pixel"):
        difdtok.train(run)


def _never(*args, **kwargs):
    raise AssertionError("an image was encoded although its ids are stored")


def test_stored_batches_give_the_losses_of_the_images(folders):
    ds = PretokenizedDataset(folders / "ids")
    stored = collate([ds[i] for i in range(6)])
    images = collate([ShapeWorldDataset(WORLD, seed=0, length=N)[i] for i in range(6)])
    assert "image" not in stored
    tatok, codec = TATok.from_pretrained(folders / "tatok"), PixelVQ.from_pretrained(folders / "pixelvq")

    def both(model):
        out = []
        for batch in (images, stored):
            torch.manual_seed(3)
            out.append(model.training_losses(batch)["loss"])
        return out

    torch.manual_seed(0)
    ar = ARDTok(
        ARDTokConfig(
            tatok=tatok.config, codec=codec.inference_config(), lm=LMConfig(dim=32, depth=1, heads=2)
        )
    )
    ar.load_submodels(tatok, codec)
    a, b = both(ar)
    assert torch.equal(a, b)
    dif = DifDTok(
        DifDTokConfig(
            tatok=tatok.config, codec=codec.inference_config(), image_size=16, dim=32, depth=1, heads=2
        )
    )
    dif.load_submodels(tatok, codec)
    a, b = both(dif)
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_tar_reads_stored_ids_as_it_reads_images(folders):
    model = tar()
    model.load_tatok(TATok.from_pretrained(folders / "tatok"))
    tasks = PretokenizedTasks(PretokenizedDataset(folders / "ids"), TaskConfig(), 3, seed=0)
    stored = collate([tasks[i] for i in range(8)])
    assert {m["task"] for m in stored["meta"]} <= {"caption", "vqa", "t2i", "i2i"}
    images = collate([ShapeWorldDataset(WORLD, seed=0, length=N)[i] for i in range(8)])
    as_images = {**stored, "image": images["image"], "target": images["image"]}
    a = model.training_losses(as_images)["loss"]
    assert torch.equal(model.training_losses(stored)["loss"], a)
    assert torch.equal(model.training_losses(as_images)["loss"], a)  # images still work
    several = PretokenizedTasks(
        PretokenizedDataset(folders / "ids"), TaskConfig({"vqa": 1.0}, vqa_turns=3), 3
    )
    meta = several[0]["meta"]
    qa = {(q["question"], q["answer"]) for q in PretokenizedDataset(folders / "ids")[0]["meta"]["qa"]}
    asked = {(meta["user"], meta["answer"]), *map(tuple, meta["turns"])}
    assert len(asked) == min(3, len(qa)) and asked <= qa


def test_a_folder_made_by_another_tokenizer_is_refused(folders, tmp_path):
    with pytest.raises(DialectError, match="another TA-Tok .* fingerprint"):
        lm.train(_lm_run(folders, tmp_path, tatok=str(folders / "other_tatok")))
    with pytest.raises(DialectError, match="another TA-Tok"):
        ardtok.train(_ar_run(folders, tmp_path, tatok=str(folders / "other_tatok")))
    with pytest.raises(DialectError, match="another pixel VQ"):
        ardtok.train(_ar_run(folders, tmp_path, pixelvq=str(folders / "other_pixelvq")))
    with pytest.raises(DialectError, match="holds no pixel-VQ ids"):
        ardtok.train(_ar_run(folders, tmp_path, data=_stored(folders, "ids_only")))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before any step
    run = autoencoder.AutoencoderRun(data=_stored(folders), train=_train(tmp_path))
    with pytest.raises(DialectError, match="hold ids, not images"):
        autoencoder.train(run)


def test_lm_mixes_pretokenized_folders_and_checks_each(folders, tmp_path):
    mix = [{"path": str(folders / "ids"), "ratio": 3}, {"path": str(folders / "ids_only"), "ratio": 1}]
    data = DataConfig(source="pretokenized", size=16, mix=mix, mix_by="batch")
    run = _lm_run(folders, tmp_path, data=data)
    run.model.tatok = TATok.load_config(folders / "tatok")
    tasks = lm.build_tasks(run)
    assert isinstance(tasks, MixtureDataset) and all(isinstance(s, PretokenizedTasks) for s in tasks.sources)
    assert tasks[0]["image"].shape == (16 + 4 + 1,)
    run = _lm_run(folders, tmp_path, data=data, tatok=str(folders / "other_tatok"))
    with pytest.raises(DialectError, match="another TA-Tok"):
        lm.train(run)
