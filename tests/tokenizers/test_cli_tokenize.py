import json

import numpy as np
import torch
from PIL import Image

from dialect.cli.main import main
from dialect.encoders.vit import ViTConfig
from dialect.quant import VQConfig
from dialect.tokenizers.tatok import TATok, TATokConfig


def _model(tmp_path):
    torch.manual_seed(0)
    cfg = TATokConfig(
        teacher=ViTConfig(image_size=32, patch_size=8, dim=64, depth=2, heads=2),
        vq=VQConfig(dim=384, num_codes=64), decoder_dim=64, decoder_depth=1, decoder_heads=2,
    )  # fmt: skip
    return TATok(cfg).save_pretrained(tmp_path / "tatok")


def test_tokenize_prints_ids_tokens_and_words(tmp_path, capsys):
    model = _model(tmp_path)
    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(img)
    assert main(["tokenize", str(img), "--model", str(model), "--scale", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["grid"] == [2, 2] and len(out["ids"]) == 4 and len(out["words"]) == 4
    assert out["tokens"] == "<S1>" + "".join(f"<I{i}>" for i in out["ids"])
    words = TATok.from_pretrained(model).config.vq.tokens
    assert out["words"] == [words[i] for i in out["ids"]]
    assert main(["tokenize", str(img), "--model", str(model)]) == 0
    assert "words (token grid)" in capsys.readouterr().out


def test_tokenize_bad_inputs_exit_2(tmp_path, capsys):
    model = _model(tmp_path)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["tokenize", str(bad), "--model", str(model)]) == 2
    assert "not an image" in capsys.readouterr().err
    good = tmp_path / "ok.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(good)
    assert main(["tokenize", str(good), "--model", str(model), "--scale", "7"]) == 2
    assert main(["tokenize", str(good), "--model", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
