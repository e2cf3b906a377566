import json

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.encoders.pixel import PixelAutoencoder, PixelAutoencoderConfig


def _model():
    return PixelAutoencoder(PixelAutoencoderConfig(image_size=16, channels=[8, 16], latent_dim=4))


def test_save_load_round_trip_is_exact(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["_class"] == "PixelAutoencoder" and cfg["channels"] == [8, 16]
    r = PixelAutoencoder.from_pretrained(tmp_path / "m")
    assert r.config == m.config
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(m(x), r(x))
    for (k, a), (_, b) in zip(m.state_dict().items(), r.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_fingerprint_names_the_weights_not_the_copy(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path / "m")
    assert PixelAutoencoder.from_pretrained(tmp_path / "m").fingerprint() == m.fingerprint()
    assert len(m.fingerprint()) == 16
    with torch.no_grad():
        next(m.parameters())[0].add_(1e-3)
    assert PixelAutoencoder.from_pretrained(tmp_path / "m").fingerprint() != m.fingerprint()


def test_overwrite_is_atomic_and_leaves_no_temp(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path / "m")
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_missing_files_and_mismatches_are_clear(tmp_path):
    with pytest.raises(DialectError, match="not found"):
        PixelAutoencoder.from_pretrained(tmp_path / "nope")
    m = _model()
    m.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(DialectError, match="model.safetensors is missing"):
        PixelAutoencoder.from_pretrained(tmp_path / "m")
    m.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["latent_dimm"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DialectError, match="latent_dimm"):
        PixelAutoencoder.from_pretrained(tmp_path / "m")


def test_weights_from_other_architecture_are_rejected(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["latent_dim"] = 6
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises((DialectError, RuntimeError)):
        PixelAutoencoder.from_pretrained(tmp_path / "m")
