"""Scene sampling: determinism, geometry constraints, held-out pairs, config validation."""

import json
import re

import numpy as np
import pytest

from dialect.core.config import config_from_dict
from dialect.core.errors import DialectError
from dialect.world import Scene, WorldConfig, make_example, render, sample_scene
from dialect.world.scene import fits

CFG = WorldConfig()
# The test's own vocabulary (independent of language.py): a new synonym there must be added here.
SHAPE_WORDS = {
    "circle": ["circle", "ball", "disk"],
    "square": ["square", "box"],
    "triangle": ["triangle"],
    "diamond": ["diamond", "rhombus"],
    "cross": ["cross", "plus"],
}


def _all_text(ex):
    return " ".join(
        ex["captions"] + [q["question"] for q in ex["qa"]] + [e["instruction"] for e in ex["edits"]]
    )


def test_same_seed_same_example_and_independent_of_order():
    a = make_example(7, seed=3, cfg=CFG)
    b = make_example(7, seed=3, cfg=CFG)
    assert a["image"].tobytes() == b["image"].tobytes()
    assert a["scene"] == b["scene"] and a["captions"] == b["captions"] and a["qa"] == b["qa"]
    assert [e["target"] for e in a["edits"]] == [e["target"] for e in b["edits"]]
    # example 7 does not depend on examples 0..6 having been drawn, nor on with_edits
    for i in range(7):
        make_example(i, seed=3, cfg=CFG)
    c = make_example(7, seed=3, cfg=CFG, with_edits=False)
    assert c["scene"] == a["scene"] and c["qa"] == a["qa"]
    # and other seeds / splits / indices differ
    scenes = {make_example(7, s, CFG)["scene"] for s in range(5)} | {make_example(8, 3, CFG)["scene"]}
    assert len(scenes) == 6
    assert make_example(7, 3, CFG, split="val")["scene"] != a["scene"]


def test_scenes_respect_geometry():
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(500):
        scene = sample_scene(rng, CFG)
        n = len(scene.objects)
        counts.add(n)
        assert CFG.min_objects <= n <= CFG.max_objects
        for i, o in enumerate(scene.objects):
            others = scene.objects[:i] + scene.objects[i + 1 :]
            assert fits(o, others, CFG), o  # in canvas, off bucket cut points, no overlap
            for v in (o.x, o.y):
                assert abs(v - 1 / 3) >= CFG.bucket_margin and abs(v - 2 / 3) >= CFG.bucket_margin
    assert counts == {1, 2, 3, 4}


def test_attribute_coverage():
    rng = np.random.default_rng(1)
    objs = [o for _ in range(400) for o in sample_scene(rng, CFG).objects]
    assert {o.shape for o in objs} == set(CFG.shapes)
    assert {o.color for o in objs} == set(CFG.colors)
    assert {o.size for o in objs} == {"small", "large"}
    assert {(o.column, o.row) for o in objs} == {
        (c, r) for c in ("left", "center", "right") for r in ("top", "middle", "bottom")
    }


def test_scene_dict_round_trip_is_exact():
    scene = make_example(0, 0, CFG)["scene"]
    again = Scene.from_dict(json.loads(json.dumps(scene.to_dict())))
    assert again == scene
    assert render(again, CFG).tobytes() == render(scene, CFG).tobytes()
    with pytest.raises(DialectError):
        Scene.from_dict({"objects": [{"shape": "circle"}]})


def test_heldout_pairs_never_in_train():
    held = {tuple(p) for p in CFG.heldout}
    patterns = [re.compile(rf"\b{c} {w}\b") for c, s in held for w in SHAPE_WORDS[s]]
    for i in range(2000):
        ex = make_example(i, 11, CFG, split="train")
        scenes = [ex["scene"]] + [e["target"] for e in ex["edits"]]
        for scene in scenes:
            assert not {(o.color, o.shape) for o in scene.objects} & held, (i, scene)
        text = _all_text(ex)
        assert not any(p.search(text) for p in patterns), (i, text)


def test_heldout_split_contains_heldout_pairs():
    held = {tuple(p) for p in CFG.heldout}
    seen = set()
    for i in range(300):
        pairs = {(o.color, o.shape) for o in make_example(i, 0, CFG, split="heldout")["scene"].objects}
        assert pairs & held
        seen |= pairs & held
    assert seen == held


def test_background_variation():
    cfg = WorldConfig(background_variation=True)
    bgs = {make_example(i, 0, cfg)["scene"].background for i in range(50)}
    assert len(bgs) > 20 and all(205 - 8 <= v <= 255 for bg in bgs for v in bg)
    img = make_example(0, 0, cfg)["image"]
    assert tuple(img[0, 0]) == make_example(0, 0, cfg)["scene"].background


def test_render_shape_and_antialiasing():
    img = make_example(3, 0, CFG)["image"]
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    scene = make_example(3, 0, CFG)["scene"]
    big = render(scene, WorldConfig(size=128))
    assert big.shape == (128, 128, 3)
    colors = {tuple(c) for c in img.reshape(-1, 3)}
    assert len(colors) > len(scene.objects) + 1  # edge pixels are blends: anti-aliased


@pytest.mark.parametrize(
    "bad",
    [
        {"shapes": ["circle", "hexagon"]},
        {"colors": ["red", "mauve"]},
        {"min_objects": 3, "max_objects": 2},
        {"heldout": [["red", "hexagon"]]},
        {"size": 8},
        {"radius_small": 0.2, "radius_large": 0.1},
    ],
)
def test_bad_config_raises_dialect_error(bad):
    with pytest.raises(DialectError):
        config_from_dict(WorldConfig, bad).validate()


def test_bad_split_and_index():
    with pytest.raises(DialectError, match="split"):
        make_example(0, 0, CFG, split="test")
    with pytest.raises(DialectError):
        make_example(-1, 0, CFG)
