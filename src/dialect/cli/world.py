"""`dialect world`: write ShapeWorld samples to a folder, and grade a folder of images.

    dialect world sample --n 64 --seed 0 --out runs/world   # PNGs, scenes.jsonl, world.json, contact sheet
    dialect world grade runs/world                          # recovery accuracy -> runs/world/grade.json

This module only parses arguments and loops over files; the work is in `dialect.world`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from dialect.core.config import config_from_dict
from dialect.core.errors import DialectError
from dialect.core.images import grid
from dialect.world import SPLITS, Scene, WorldConfig, make_example, parse_image, recovery, scene_equal

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OWN_FILES = ("scenes.jsonl", "world.json", "grade.json", "contact_sheet.png")  # never graded as inputs
SHEET_MAX = 64  # images on the contact sheet


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `world sample` and `world grade` under the top-level parser's subparsers."""
    world = subparsers.add_parser("world", help="ShapeWorld: sample scenes, grade images")
    sub = world.add_subparsers(dest="world_command", metavar="{sample,grade}", required=True)

    s = sub.add_parser("sample", help="write N ShapeWorld examples (PNG + scenes.jsonl + contact sheet)")
    s.add_argument("--n", type=int, default=16, help="number of examples (default 16)")
    s.add_argument("--seed", type=int, default=0, help="seed: same seed, same bytes (default 0)")
    s.add_argument("--out", required=True, help="output folder (created if missing)")
    s.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    s.add_argument("--split", choices=SPLITS, default="train", help="train | val | heldout (default train)")
    s.add_argument("--background-variation", action="store_true", help="random light-gray tinted backgrounds")
    s.set_defaults(func=cmd_sample)

    g = sub.add_parser("grade", help="parse every image in DIR; score it against DIR/scenes.jsonl if present")
    g.add_argument("dir", help="folder of .png / .jpg images")
    g.set_defaults(func=cmd_grade)


def _framed(img: np.ndarray) -> np.ndarray:
    """Copy with a 1-px gray frame, so white-background cells stay apart on the contact sheet."""
    out = img.copy()
    out[[0, -1]] = 160
    out[:, [0, -1]] = 160
    return out


def _edit_record(edit: dict[str, Any]) -> dict[str, Any]:
    return {"instruction": edit["instruction"], "type": edit["type"], "target": edit["target"].to_dict()}


def cmd_sample(args: argparse.Namespace) -> int:
    """Write {i:06d}.png, scenes.jsonl (one JSON line per image), world.json and contact_sheet.png."""
    if args.n < 1:
        raise DialectError(f"--n must be at least 1, got {args.n}")
    cfg = WorldConfig(size=args.size, background_variation=args.background_variation).validate()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DialectError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    sheet, lines = [], []
    for i in tqdm(range(args.n), desc="world sample", disable=args.n < 200, file=sys.stderr):
        ex = make_example(i, args.seed, cfg, args.split)
        name = f"{i:06d}.png"
        Image.fromarray(ex["image"]).save(out / name)
        if i < SHEET_MAX:
            sheet.append(_framed(ex["image"]))
        record = {
            "file": name,
            "index": i,
            "split": args.split,
            "scene": ex["scene"].to_dict(),
            "captions": ex["captions"],
            "qa": ex["qa"],
            "edits": [_edit_record(e) for e in ex["edits"]],
        }
        lines.append(json.dumps(record))
    (out / "scenes.jsonl").write_text("\n".join(lines) + "\n")
    (out / "world.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    Image.fromarray(grid(np.stack(sheet))).save(out / "contact_sheet.png")
    print(f"wrote {args.n} images, scenes.jsonl, world.json and contact_sheet.png to {out}")
    return 0


def _read_image(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _load_truth(folder: Path) -> dict[str, Scene] | None:
    path = folder / "scenes.jsonl"
    if not path.is_file():
        return None
    truth = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            truth[rec["file"]] = Scene.from_dict(rec["scene"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DialectError(f"{path}, line {n}: not a scene record ({exc})") from None
    return truth


def _load_cfg(folder: Path) -> WorldConfig:
    path = folder / "world.json"
    if not path.is_file():
        return WorldConfig()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DialectError(f"{path} is not valid JSON: {exc}") from None
    return config_from_dict(WorldConfig, data, source=str(path)).validate()


def cmd_grade(args: argparse.Namespace) -> int:
    """Parse every image in the folder; with scenes.jsonl, report recovery accuracy per attribute."""
    folder = Path(args.dir)
    if not folder.is_dir():
        raise DialectError(f"{folder} is not a folder")
    cfg, truth = _load_cfg(folder), _load_truth(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in OWN_FILES)
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    rows, truths, parsed = [], [], []
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    for path in tqdm(images, desc="world grade", disable=len(images) < 200, file=sys.stderr):
        img = _read_image(path)
        if img is None or min(img.shape[:2]) < 16:
            skipped.append(path.name)
            continue
        got = parse_image(img, cfg)
        row: dict[str, Any] = {"file": path.name, "parsed": got.to_dict()}
        if truth is not None and path.name in truth:
            row["exact"] = scene_equal(truth[path.name], got)
            truths.append(truth[path.name])
            parsed.append(got)
        rows.append(row)
    missing = sorted(set(truth or {}) - {row["file"] for row in rows} - set(skipped))
    if missing:
        print(
            f"warning: {len(missing)} image(s) listed in scenes.jsonl are missing: {', '.join(missing[:5])}"
        )
    if skipped:
        print(f"warning: skipped {len(skipped)} non-image or unreadable file(s): {', '.join(skipped[:5])}")
    if not rows:
        raise DialectError(f"no readable .png/.jpg images in {folder}")
    report: dict[str, Any] = {"n_images": len(rows), "skipped": skipped, "images": rows}
    if truths:
        acc = recovery(truths, parsed)
        report["n_graded"] = len(truths)
        report["accuracy"] = acc
        print(f"graded {len(truths)} images against scenes.jsonl")
        for key, value in acc.items():
            unit = " per image" if key == "spurious" else ""
            print(f"  {key:<9} {value:.4f}{unit}")
    else:
        for row in rows:
            objs = row["parsed"]["objects"]
            desc = ", ".join(
                f"{o['size']} {o['color']} {o['shape']} at ({o['x']:.2f}, {o['y']:.2f})" for o in objs
            )
            print(f"{row['file']}: {desc or 'no valid object'}")
    (folder / "grade.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {folder / 'grade.json'}")
    return 0
