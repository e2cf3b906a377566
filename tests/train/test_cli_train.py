"""End-to-end `dialect train` runs: bad input, bad configs, and 2-process DDP equivalence."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

TINY = [
    "model.image_size=16", "model.channels=[8,16]", "model.latent_dim=4", "data.size=16",
    "train.batch_size=8", "train.log_every=1", "train.progress=false", "train.precision=fp32",
    "train.device=cpu", "train.warmup_steps=1",
]  # fmt: skip


def _dialect(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "dialect.cli.main", *args], capture_output=True, text=True, timeout=timeout
    )


def _losses(run_dir):
    return [json.loads(r)["loss"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_folder_with_bad_files_trains_and_reports_skips(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(imgs / f"good{i}.png")
    buf = imgs / "full.jpg"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, quality=90)
    (imgs / "truncated.jpg").write_bytes(buf.read_bytes()[: len(buf.read_bytes()) // 2])
    buf.unlink()
    (imgs / "notes.png").write_text("this is not an image")
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(imgs / "dot.png")
    out = tmp_path / "run"
    r = _dialect("train", "autoencoder", *TINY, "data.source=folder", f"data.path={imgs}",
                 "train.steps=4", f"train.out_dir={out}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert "skipped 3 files" in text, text
    for name in ("truncated.jpg", "notes.png", "dot.png"):
        assert name in text
    assert "Traceback" not in text
    assert len(_losses(out)) == 4 and (out / "model" / "model.safetensors").is_file()


def test_bad_configs_give_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: [1, 2\n")
    for args in (["--config", str(bad)], ["train.stepz=3"], ["train.steps=many"], ["--preset", "huge"]):
        r = _dialect("train", "autoencoder", *args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dialect: error:"), r.stderr
    assert "bad.yaml (line 3" in _dialect("train", "autoencoder", "--config", str(bad)).stderr


def test_print_config_resolves_preset_and_overrides():
    r = _dialect("train", "autoencoder", "--preset", "tiny", "train.steps=7", "--print-config")
    assert r.returncode == 0, r.stderr
    assert "steps: 7" in r.stdout and "channels:" in r.stdout


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_combined_batch(tmp_path):
    common = ["train", "autoencoder", *TINY, "data.source=shapeworld", "train.steps=4"]
    one = _dialect(*common, f"train.out_dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "dialect.cli.main", *common, f"train.out_dir={tmp_path / 'two'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 4
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert a[-1] != a[0]  # the runs really trained
