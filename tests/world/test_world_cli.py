"""`dialect world sample` / `dialect world grade`, driven through an argparse parser like main.py's."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from dialect.cli import world
from dialect.core.errors import DialectError


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dialect")
    world.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["world", *argv])
    return args.func(args)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_sample_is_byte_identical_for_a_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _run("sample", "--n", "12", "--seed", "4", "--out", str(a)) == 0
    assert _run("sample", "--n", "12", "--seed", "4", "--out", str(b)) == 0
    assert _run("sample", "--n", "12", "--seed", "5", "--out", str(c)) == 0
    fa = _files(a)
    assert fa == _files(b)
    assert fa["000000.png"] != _files(c)["000000.png"]
    assert {"scenes.jsonl", "contact_sheet.png", "world.json", "000011.png"} <= set(fa)
    lines = (a / "scenes.jsonl").read_text().splitlines()
    assert len(lines) == 12
    rec = json.loads(lines[3])
    assert rec["file"] == "000003.png" and rec["scene"]["objects"] and rec["captions"] and rec["qa"]
    assert all({"instruction", "type", "target"} <= set(e) for e in rec["edits"])
    img = np.asarray(Image.open(a / "000003.png"))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8


def test_grade_reports_full_recovery_on_own_output(tmp_path, capsys):
    out = tmp_path / "w"
    _run("sample", "--n", "30", "--seed", "1", "--out", str(out), "--split", "heldout", "--size", "96")
    (out / "notes.txt").write_text("not an image")
    (out / "broken.png").write_bytes(b"not a png")
    assert _run("grade", str(out)) == 0
    printed = capsys.readouterr().out
    assert "skipped 2" in printed
    report = json.loads((out / "grade.json").read_text())
    assert report["n_graded"] == 30
    assert all(v == 1.0 for k, v in report["accuracy"].items() if k != "spurious")
    assert report["accuracy"]["spurious"] == 0.0


def test_grade_without_truth_lists_parsed_scenes(tmp_path, capsys):
    out = tmp_path / "w"
    _run("sample", "--n", "3", "--seed", "2", "--out", str(out))
    (out / "scenes.jsonl").unlink()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(out / "noise.png")
    assert _run("grade", str(out)) == 0
    printed = capsys.readouterr().out
    assert "noise.png: no valid object" in printed
    report = json.loads((out / "grade.json").read_text())
    assert "accuracy" not in report and report["n_images"] == 4
    parsed = {r["file"]: r["parsed"] for r in report["images"]}
    assert parsed["noise.png"]["valid"] is False and parsed["000000.png"]["valid"] is True


def test_grade_changes_when_an_image_is_wrong(tmp_path):
    out = tmp_path / "w"
    _run("sample", "--n", "4", "--seed", "3", "--out", str(out))
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(out / "000002.png")  # blank: objects lost
    _run("grade", str(out))
    acc = json.loads((out / "grade.json").read_text())["accuracy"]
    assert acc["exact"] == 0.75 and acc["count"] == 0.75


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "--n", "0", "--out", "x"],
        ["sample", "--n", "2", "--size", "4", "--out", "x"],
        ["grade", "missing"],
    ],
)
def test_bad_input_raises_dialect_error(tmp_path, argv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DialectError):
        _run(*argv)


def test_grade_empty_folder(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DialectError, match="no readable"):
        _run("grade", str(tmp_path))
