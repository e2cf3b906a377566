"""The grader: exact on clean renders, robust to blur + noise, silent on garbage; comparisons."""

import numpy as np
import pytest
from scipy import ndimage

from dialect.core.errors import DialectError
from dialect.world import (
    CATEGORIES,
    Constraints,
    Obj,
    ObjSpec,
    Prompt,
    RelSpec,
    Scene,
    WorldConfig,
    make_example,
    make_prompts,
    parse_image,
    recovery,
    render,
    satisfies,
    scene_equal,
)

CFG = WorldConfig()


def _degrade(img: np.ndarray, rng: np.random.Generator, noise: float = 0.05, gain: float = 0.0) -> np.ndarray:
    """Gaussian blur sigma 1 px, Gaussian noise `noise` on [0, 1] pixels, per-channel gain 1 +- `gain`."""
    x = ndimage.gaussian_filter(img.astype(np.float32) / 255, sigma=(1, 1, 0))
    x = x * rng.uniform(1 - gain, 1 + gain, size=3) + rng.normal(0, noise, x.shape)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize(
    ("split", "n", "bgvar"), [("train", 300, False), ("heldout", 100, False), ("train", 100, True)]
)
def test_exact_on_clean_renders(split, n, bgvar):
    cfg = WorldConfig(background_variation=bgvar)
    exs = [make_example(i, 21, cfg, split=split, with_edits=False) for i in range(n)]
    parsed = [parse_image(ex["image"], cfg) for ex in exs]
    for ex, p in zip(exs, parsed, strict=True):
        assert p.valid and scene_equal(p, ex["scene"]), (ex["scene"], p.objects)
        for t, o in zip(
            sorted(ex["scene"].objects, key=Obj.key), sorted(p.objects, key=Obj.key), strict=True
        ):
            assert abs(t.x - o.x) < 0.5 / 64 and abs(t.y - o.y) < 0.5 / 64  # sub-pixel centres
    assert recovery([ex["scene"] for ex in exs], parsed)["exact"] == 1.0


def test_robust_to_blur_noise_and_drift():
    rng = np.random.default_rng(0)
    exs = [make_example(i, 22, CFG, with_edits=False) for i in range(200)]
    parsed = [parse_image(_degrade(ex["image"], rng, gain=0.1), CFG) for ex in exs]
    acc = recovery([ex["scene"] for ex in exs], parsed)
    assert acc["objects"] >= 0.98 and acc["count"] >= 0.98, acc


def test_edit_targets_parse_back():
    for i in range(40):
        for edit in make_example(i, 23, CFG)["edits"]:
            assert scene_equal(parse_image(render(edit["target"], CFG), CFG), edit["target"])


def test_noise_and_garbage_give_no_objects():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(40)]
    images += [np.clip(rng.normal(128, 50, (64, 64, 3)), 0, 255).astype(np.uint8) for _ in range(40)]
    for _ in range(40):  # smooth colour blobs, like a failed generator
        x = ndimage.gaussian_filter(rng.normal(0, 1, (64, 64, 3)), (3, 3, 0))
        images.append(((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8))
    images.append(np.full((64, 64, 3), 255, np.uint8))  # blank canvas
    for img in images:
        p = parse_image(img, CFG)
        assert not p.valid and p.objects == ()


def test_grader_is_not_fooled_by_wrong_shapes():
    # a correct render, then the same scene with one object's shape swapped: must differ
    scene = Scene((Obj("circle", "red", "large", 0.2, 0.2), Obj("square", "blue", "small", 0.8, 0.8)))
    swapped = Scene((Obj("diamond", "red", "large", 0.2, 0.2), Obj("square", "blue", "small", 0.8, 0.8)))
    assert scene_equal(parse_image(render(scene, CFG), CFG), scene)
    assert not scene_equal(parse_image(render(swapped, CFG), CFG), scene)


def test_grader_rejects_bad_input():
    with pytest.raises(DialectError):
        parse_image(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(DialectError):
        parse_image(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DialectError):
        parse_image(np.zeros((64, 64), np.uint8))


def test_scene_equal_compares_multisets_by_bucket():
    a = Scene((Obj("circle", "red", "small", 0.1, 0.1), Obj("square", "blue", "large", 0.8, 0.5)))
    same_bucket = Scene((Obj("square", "blue", "large", 0.9, 0.45), Obj("circle", "red", "small", 0.2, 0.2)))
    assert scene_equal(a, same_bucket)
    moved = Scene((Obj("circle", "red", "small", 0.5, 0.1), a.objects[1]))
    assert not scene_equal(a, moved) and scene_equal(a, moved, position=False)
    resized = Scene((Obj("circle", "red", "large", 0.1, 0.1), a.objects[1]))
    assert not scene_equal(a, resized) and scene_equal(a, resized, size=False)
    assert not scene_equal(a, Scene(a.objects + a.objects[:1]))


def test_satisfies_constraints():
    scene = Scene(
        (
            Obj("circle", "red", "small", 0.15, 0.5),
            Obj("square", "blue", "large", 0.8, 0.5),
            Obj("square", "green", "small", 0.5, 0.85),
        )
    )
    img = render(scene, CFG)
    yes = [
        Constraints((ObjSpec("circle"),)),
        Constraints((ObjSpec("square", count=2, exact=True),)),
        Constraints((ObjSpec("circle", "red"), ObjSpec("square", "blue"))),
        Constraints((ObjSpec("circle"), ObjSpec("square")), (RelSpec(0, "left of", 1),)),
        Constraints((ObjSpec("square", "green"), ObjSpec("circle")), (RelSpec(0, "below", 1),)),
    ]
    no = [
        Constraints((ObjSpec("triangle"),)),
        Constraints((ObjSpec("square", count=3),)),
        Constraints((ObjSpec("circle", count=2, exact=True),)),
        Constraints((ObjSpec("circle", "blue"),)),
        Constraints((ObjSpec("circle"), ObjSpec("square", "blue")), (RelSpec(0, "right of", 1),)),
        Constraints((ObjSpec("square", "green"), ObjSpec("circle")), (RelSpec(0, "above", 1),)),
    ]
    for c in yes:
        assert satisfies(scene, c) and satisfies(img, c, CFG), c
    for c in no:
        assert not satisfies(scene, c) and not satisfies(img, c, CFG), c
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert not satisfies(noise, yes[0], CFG)


def test_prompts_cover_categories_and_are_deterministic():
    prompts = make_prompts(20, seed=0, cfg=CFG)
    assert prompts == make_prompts(20, seed=0, cfg=CFG) != make_prompts(20, seed=1, cfg=CFG)
    assert [p.category for p in prompts[::20]] == list(CATEGORIES)
    assert Prompt.from_dict(prompts[7].to_dict()) == prompts[7]
    assert (
        make_prompts(5, 0, CFG, categories=("position",))
        == [p for p in prompts if p.category == "position"][:5]
    )
    held = {tuple(p) for p in CFG.heldout}
    for p in make_prompts(30, 0, CFG, split="train"):
        assert not {(o.color, o.shape) for o in p.constraints.objects} & held


def _scene_for(prompt: Prompt) -> Scene:
    """A scene built to satisfy a prompt, laid out left to right (or top to bottom for above/below)."""
    objs = []
    for spec in prompt.constraints.objects:
        objs += [spec] * spec.count
    vertical = any(r.relation in ("above", "below") for r in prompt.constraints.relations)
    flip = any(r.relation in ("right of", "below") for r in prompt.constraints.relations)
    objs = objs[::-1] if flip else objs
    slots = [0.15, 0.5, 0.85, 0.5]
    out = []
    for i, spec in enumerate(objs):
        a, b = slots[i], 0.15 if i == 3 else 0.5
        x, y = (b, a) if vertical else (a, b)
        out.append(Obj(spec.shape, spec.color or "purple", "small", x, y))
    return Scene(tuple(out))


def test_prompts_are_satisfiable_by_their_own_scene_and_render():
    for p in make_prompts(10, seed=3, cfg=CFG):
        scene = _scene_for(p)
        assert satisfies(scene, p), (p, scene)
        assert satisfies(render(scene, CFG), p, CFG), (p, scene)
        empty = Scene(
            (
                Obj(
                    "cross" if p.constraints.objects[0].shape != "cross" else "circle",
                    "black",
                    "small",
                    0.5,
                    0.5,
                ),
            )
        )
        assert not satisfies(empty, p)
