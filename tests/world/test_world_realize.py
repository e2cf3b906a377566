"""world.realize: scenes that meet a prompt, the ideal drawings of GenEval-mini's ceiling."""

import numpy as np
import pytest

from dialect.core.errors import DialectError
from dialect.world import (
    CATEGORIES,
    Constraints,
    ObjSpec,
    RelSpec,
    WorldConfig,
    make_prompts,
    realize,
    render,
    satisfies,
)
from dialect.world.scene import heldout_set

WORLD = WorldConfig()


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_realized_scene_passes_its_prompt_with_exactly_the_required_objects(category):
    for i, prompt in enumerate(make_prompts(15, 5, WORLD, categories=(category,))):
        rng = np.random.default_rng(i)
        for _ in range(3):
            scene = realize(rng, prompt, WORLD)
            assert satisfies(render(scene, WORLD), prompt, WORLD), (prompt.text, scene)
            assert len(scene.objects) == sum(o.count for o in prompt.constraints.objects)


def test_unnamed_colours_keep_to_the_split_and_named_ones_are_kept():
    held = heldout_set(WORLD)
    color, shape = next(iter(held))
    cons = Constraints((ObjSpec(shape, color), ObjSpec(shape, count=3)))
    for seed in range(20):
        objs = realize(np.random.default_rng(seed), cons, WORLD).objects
        pairs = [(o.color, o.shape) for o in objs]
        assert (color, shape) in pairs and sum(p in held for p in pairs) == 1  # the named one only


def test_impossible_prompts_raise():
    with pytest.raises(DialectError, match="at most"):
        realize(np.random.default_rng(0), Constraints((ObjSpec("circle", count=5, exact=True),)), WORLD)
    both_ways = Constraints(
        (ObjSpec("circle"), ObjSpec("square")), (RelSpec(0, "left of", 1), RelSpec(1, "left of", 0))
    )
    with pytest.raises(DialectError, match="no layout"):
        realize(np.random.default_rng(0), both_ways, WORLD, tries=20)
