"""Scenes that meet a text-to-image prompt: the ideal drawings of GenEval-mini.

`realize` builds a scene holding exactly the objects a prompt requires (its colour when the prompt
names one, else a colour that shape may take; a random size) at free positions, redrawn until every
relation the prompt states holds. Its render passes the prompt by construction, so these scenes,
tokenized by TA-Tok and painted back by a de-tokenizer, measure what a perfect LM could score with
that tokenizer and de-tokenizer (`dialect eval geneval --oracle`): the drawing chain's ceiling.
"""

from __future__ import annotations

import numpy as np

from dialect.core.errors import DialectError
from dialect.world.grade import relation_holds
from dialect.world.language import pick
from dialect.world.prompts import Constraints, Prompt
from dialect.world.scene import SIZES, Obj, Scene, WorldConfig, allowed_pairs, place


def realize(
    rng: np.random.Generator,
    prompt: Prompt | Constraints,
    cfg: WorldConfig,
    split: str = "train",
    tries: int = 200,
) -> Scene:
    """A scene (white background) with exactly the required objects, in a random order, whose
    relations hold by the language's wider margin (`cfg.relation_margin`, so a parsed render
    clears the grader's). Unnamed colours come from `allowed_pairs(cfg, split)`
    ("train": the pairs training scenes hold, "heldout": any; a named colour is kept whatever the
    split). No layout after `tries` attempts (a world too small for the objects) -> DialectError."""
    cons = prompt.constraints if isinstance(prompt, Prompt) else prompt
    pairs = allowed_pairs(cfg, split)
    wanted = []
    for spec in cons.objects:
        for _ in range(spec.count):
            color = spec.color or pick(rng, [c for c, s in pairs if s == spec.shape])
            wanted.append((spec.shape, color))
    if len(wanted) > cfg.max_objects:
        raise DialectError(
            f"the prompt needs {len(wanted)} objects; this world holds at most {cfg.max_objects}"
        )
    # the first object of each spec stands for it in a relation (RelSpec indexes specs)
    first = np.cumsum([0] + [s.count for s in cons.objects])[:-1]
    margin = cfg.relation_margin
    for _ in range(tries):
        objs: list[Obj] = []
        for shape, color in wanted:
            obj = place(rng, shape, color, SIZES[int(rng.integers(len(SIZES)))], objs, cfg)
            if obj is None:
                break
            objs.append(obj)
        if len(objs) < len(wanted):
            continue
        if all(
            relation_holds(objs[first[r.a]], r.relation, objs[first[r.b]], margin) for r in cons.relations
        ):
            order = rng.permutation(len(objs))
            return Scene(tuple(objs[int(k)] for k in order))
    raise DialectError(f"no layout meets the prompt's constraints in {tries} tries")
