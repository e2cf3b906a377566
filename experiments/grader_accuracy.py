"""How well does the ShapeWorld grader read scenes back from pixels? Writes results/grader_accuracy.md.

    PYTHONPATH=src python experiments/grader_accuracy.py            # 2,000 images per main condition
    PYTHONPATH=src python experiments/grader_accuracy.py --n 200    # quick look

Degradations act on [0, 1] pixels, in this order, then clip and round back to uint8:
  blur   scipy.ndimage.gaussian_filter, sigma in pixels, per channel
  gain   per-image, per-channel gain drawn uniformly from [1 - g, 1 + g] ("colour drift")
  noise  additive Gaussian noise with standard deviation sigma
Accuracy follows `dialect.world.recovery`: each true object is matched to the nearest parsed object
(centres within 0.1); shape / color / size / position (3x3 bucket) count the matched objects with
that attribute right (unmatched = wrong); objects = all four right; count = images with the right
number of objects; exact = images whose parsed scene equals the truth (`scene_equal`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from dialect.data.shapeworld import ShapeWorldDataset
from dialect.world import WorldConfig, make_example, parse_image, recovery, render, sample_scene

OUT = Path(__file__).parent / "results" / "grader_accuracy.md"
SEED = 1000  # differs from every test seed


@dataclass(frozen=True)
class Condition:
    name: str
    split: str = "train"
    size: int = 64
    bgvar: bool = False
    blur: float = 0.0
    gain: float = 0.0
    noise: float = 0.0
    scale: float = 1.0  # fraction of --n images


def degrade(img: np.ndarray, c: Condition, rng: np.random.Generator) -> np.ndarray:
    """Apply blur, gain and noise (see the module docstring); a no-op for a clean condition."""
    if not (c.blur or c.gain or c.noise):
        return img
    x = img.astype(np.float32) / 255
    if c.blur:
        x = ndimage.gaussian_filter(x, sigma=(c.blur, c.blur, 0))
    if c.gain:
        x = x * rng.uniform(1 - c.gain, 1 + c.gain, size=3).astype(np.float32)
    if c.noise:
        x = x + rng.normal(0, c.noise, x.shape).astype(np.float32)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


MAIN: list[Condition] = [
    Condition("clean, train split"),
    Condition("clean, heldout split", split="heldout"),
    Condition("clean, background variation", bgvar=True, scale=0.5),
    Condition("blur 1 + noise 0.05", blur=1.0, noise=0.05),
    Condition("colour drift +-10%", gain=0.1),
    Condition("blur 1 + noise 0.05 + drift +-10%, bg variation", blur=1.0, noise=0.05, gain=0.1, bgvar=True),
]
STRESS = [
    Condition("noise 0.10 + blur 1", blur=1.0, noise=0.10, scale=0.5),
    Condition("noise 0.15 + blur 1", blur=1.0, noise=0.15, scale=0.5),
    Condition("blur 1.5 + noise 0.05", blur=1.5, noise=0.05, scale=0.5),
    Condition("blur 2 + noise 0.05", blur=2.0, noise=0.05, scale=0.5),
    Condition("colour drift +-20%", gain=0.2, scale=0.5),
    Condition("32 px, clean", size=32, scale=0.25),
    Condition("32 px, blur 1 + noise 0.05", size=32, blur=1.0, noise=0.05, scale=0.25),
    Condition("128 px, clean", size=128, scale=0.25),
    Condition("128 px, blur 1 + noise 0.05", size=128, blur=1.0, noise=0.05, scale=0.25),
]
KEYS = ("objects", "shape", "color", "size", "position", "count", "exact", "spurious")


def run_condition(c: Condition, n: int) -> tuple[int, dict[str, float]]:
    n = max(int(n * c.scale), 10)
    cfg = WorldConfig(size=c.size, background_variation=c.bgvar)
    truths, parsed = [], []
    for i in tqdm(range(n), desc=c.name, leave=False):
        ex = make_example(i, SEED, cfg, split=c.split, with_edits=False)
        img = degrade(ex["image"], c, np.random.default_rng([SEED, i]))
        truths.append(ex["scene"])
        parsed.append(parse_image(img, cfg))
    return n, recovery(truths, parsed)


def garbage(n: int) -> list[tuple[str, int, float, float]]:
    """(kind, images, fraction with zero objects, fraction flagged invalid) for non-ShapeWorld images."""
    rng = np.random.default_rng(SEED)
    cfg = WorldConfig()

    def blobs() -> np.ndarray:
        x = ndimage.gaussian_filter(rng.normal(0, 1, (64, 64, 3)), (3, 3, 0))
        return ((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)

    makers = {
        "uniform noise U(0, 255)": lambda: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "Gaussian noise around gray, N(0.5, 0.2)": lambda: (
            np.clip(rng.normal(0.5, 0.2, (64, 64, 3)), 0, 1) * 255
        ).astype(np.uint8),
        "Gaussian noise around gray, N(0.5, 0.05)": lambda: (
            np.clip(rng.normal(0.5, 0.05, (64, 64, 3)), 0, 1) * 255
        ).astype(np.uint8),
        "smooth colour blobs (Gaussian-filtered noise, sigma 3)": blobs,
    }
    rows = []
    for kind, make in makers.items():
        results = [parse_image(make(), cfg) for _ in range(n)]
        rows.append(
            (kind, n, np.mean([not r.objects for r in results]), np.mean([not r.valid for r in results]))
        )
    return rows


def speed(n: int = 500) -> list[tuple[str, float]]:
    """Items per second, single process."""
    cfg = WorldConfig()
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, cfg) for _ in range(n)]
    images = [render(s, cfg) for s in scenes]
    out = []
    t = time.perf_counter()
    for _ in range(n):
        sample_scene(rng, cfg)
    out.append(("sample_scene", n / (time.perf_counter() - t)))
    t = time.perf_counter()
    for s in scenes:
        render(s, cfg)
    out.append(("render 64x64 (4x4 supersampled)", n / (time.perf_counter() - t)))
    t = time.perf_counter()
    for i in range(n):
        make_example(i, 0, cfg)
    out.append(("make_example (scene, image, captions, QA, edits)", n / (time.perf_counter() - t)))
    for task in ("caption", "edit"):
        ds = ShapeWorldDataset(cfg, task=task)
        t = time.perf_counter()
        for i in range(n):
            ds[i]
        out.append((f"ShapeWorldDataset[i], task={task}", n / (time.perf_counter() - t)))
    t = time.perf_counter()
    for img in images:
        parse_image(img, cfg)
    out.append(("parse_image 64x64", n / (time.perf_counter() - t)))
    return out


def table(rows: list[tuple[str, int, dict[str, float]]]) -> list[str]:
    lines = ["| condition | images | " + " | ".join(KEYS) + " |", "|---|---:|" + "---:|" * len(KEYS)]
    for name, n, acc in rows:
        cells = [f"{acc[k]:.4f}" if k != "spurious" else f"{acc[k]:.3f}" for k in KEYS]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per main condition (default 2000)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    t0 = time.time()
    main_rows = [(c.name, *run_condition(c, args.n)) for c in MAIN]
    stress_rows = [(c.name, *run_condition(c, args.n)) for c in STRESS]
    junk = garbage(max(args.n // 10, 20))
    speeds = speed()
    cmd = "PYTHONPATH=src python experiments/grader_accuracy.py" + (
        f" --n {args.n}" if args.n != 2000 else ""
    )
    lines = [
        "# ShapeWorld grader accuracy",
        "",
        f"Produced by `{cmd}` ({time.time() - t0:.0f} s on a shared 2-core CPU).",
        "Default world: 64 px, 1-4 objects, 5 shapes (circle, square, triangle, diamond, cross),",
        f"6 colours, 2 sizes, 3x3 position buckets; scenes from seed {SEED}. Definitions and",
        "degradations are in the script's docstring: blur = Gaussian (sigma in px, per channel),",
        "noise = additive Gaussian on [0, 1] pixels, drift = per-image per-channel gain.",
        "",
        "Requirements: 100 % on clean renders (train and heldout splits), >= 98 % of objects under",
        "blur 1 + noise 0.05, zero objects on noise images. The stress rows show where it stops",
        "working: blur much wider than 1 px at 64 px (2 px and up) merges the corners of small",
        "shapes (small diamonds read as crosses), and at 32 px a small object is ~6 px wide, so",
        "the same 1-px blur is already too much; colour, size, position and count stay reliable.",
        "",
        "## Main conditions",
        "",
        *table(main_rows),
        "",
        "## Stress conditions (beyond the requirements: where the grader starts to fail)",
        "",
        *table(stress_rows),
        "",
        "## Garbage images: the grader must report no object",
        "",
        "| input | images | zero objects | flagged invalid |",
        "|---|---:|---:|---:|",
        *[f"| {k} | {n} | {z:.3f} | {v:.3f} |" for k, n, z, v in junk],
        "",
        "## Speed (single process, items per second; machine shared, so indicative)",
        "",
        "| operation | per second |",
        "|---|---:|",
        *[f"| {k} | {v:.0f} |" for k, v in speeds],
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
