"""ShapeWorld: a procedural world of coloured shapes where every answer is known.

    cfg = WorldConfig()                                   # 64x64, 1-4 objects, 5 shapes, 6 colours
    ex = make_example(index=0, seed=0, cfg=cfg)           # image, scene, captions, qa, edits
    parsed = parse_image(ex["image"], cfg)                # the grader: pixels -> objects
    assert scene_equal(parsed, ex["scene"])

Modules: scene (config, dataclasses, sampling), render (pixels), language (captions, QA),
edits (edit triples), prompts (GenEval-style prompts + constraints), realize (a scene meeting a
prompt), example (one seeded example), grade (parse_image, scene_equal, satisfies, recovery).
"""

from dialect.world.edits import EDIT_TYPES, make_edits, make_variation
from dialect.world.example import example_rng, make_example
from dialect.world.grade import (
    ParsedScene,
    match_objects,
    parse_image,
    recovery,
    relation_holds,
    satisfies,
    scene_equal,
)
from dialect.world.language import QA_TYPES, captions, questions, scene_description
from dialect.world.prompts import CATEGORIES, Constraints, ObjSpec, Prompt, RelSpec, make_prompt, make_prompts
from dialect.world.realize import realize
from dialect.world.render import render
from dialect.world.scene import (
    COLUMNS,
    PALETTE,
    ROWS,
    SHAPES,
    SIZES,
    SPLITS,
    Obj,
    Scene,
    WorldConfig,
    allowed_pairs,
    sample_scene,
)

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "EDIT_TYPES",
    "PALETTE",
    "QA_TYPES",
    "ROWS",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "Constraints",
    "Obj",
    "ObjSpec",
    "ParsedScene",
    "Prompt",
    "RelSpec",
    "Scene",
    "WorldConfig",
    "allowed_pairs",
    "captions",
    "example_rng",
    "make_edits",
    "make_variation",
    "make_example",
    "make_prompt",
    "make_prompts",
    "match_objects",
    "parse_image",
    "questions",
    "realize",
    "recovery",
    "relation_holds",
    "render",
    "sample_scene",
    "satisfies",
    "scene_description",
    "scene_equal",
]
