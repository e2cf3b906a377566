import json

import numpy as np
import pytest
from PIL import Image

from dialect.cli.main import main
from dialect.core.images import to_uint8

from .micro import SIZE, images
from .test_ar import _model
from .test_diffusion import _model as _diffusion_model


@pytest.fixture(scope="module")
def ar_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("ar") / "model"
    _model().save_pretrained(path)
    return path


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(to_uint8(images(1))[0]).save(path)
    return path


def test_reconstruct_writes_input_beside_output(ar_folder, image_file, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = main(
        [
            "reconstruct",
            str(image_file),
            "--scale",
            "1",
            "--decoder",
            "ar",
            "--model",
            str(ar_folder),
            "-o",
            str(out),
        ]
    )
    assert code == 0 and "from 4 tokens (scale 1)" in capsys.readouterr().out
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (SIZE + 4, 2 * SIZE + 6, 3)  # two panels with 2-pixel padding


def test_detokenize_reads_tokenize_json(ar_folder, tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"scale": 2, "ids": [5]}, {"scale": 1, "ids": [1, 2, 3, 4]}]))
    out = tmp_path / "out.png"
    assert main(["detokenize", str(tokens), "--model", str(ar_folder), "-o", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape == (SIZE + 4, 2 * SIZE + 6, 3)


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "cannot read tokens"),
        (json.dumps({"ids": [1]}), "integer 'scale'"),
        (json.dumps({"scale": 0, "ids": [1, 2]}), "scale 0 has 16 tokens"),
        (json.dumps({"scale": 2, "ids": [999]}), "999"),
    ],
)
def test_bad_tokens_give_one_error_line(ar_folder, tmp_path, capsys, content, message):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(content)
    code = main(["detokenize", str(tokens), "--model", str(ar_folder), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dialect: error:") and message in err and len(err.splitlines()) == 1


def test_reconstruct_with_the_diffusion_decoder(tmp_path, image_file, capsys):
    folder = tmp_path / "dif"
    _diffusion_model().save_pretrained(folder)
    out = tmp_path / "out.png"
    args = ["reconstruct", str(image_file), "--decoder", "diffusion", "--model", str(folder), "--steps", "2"]
    assert main([*args, "-o", str(out)]) == 0
    assert "diffusion reconstruction from 16 tokens (scale 0)" in capsys.readouterr().out
    assert np.asarray(Image.open(out)).shape == (SIZE + 4, 2 * SIZE + 6, 3)


def test_steps_only_for_diffusion(ar_folder, image_file, tmp_path, capsys):
    code = main(
        [
            "reconstruct",
            str(image_file),
            "--model",
            str(ar_folder),
            "--steps",
            "4",
            "-o",
            str(tmp_path / "o.png"),
        ]
    )
    assert code == 2 and "--steps applies to --decoder diffusion" in capsys.readouterr().err
