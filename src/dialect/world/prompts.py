"""Text-to-image prompts with machine-checkable constraints, in GenEval's six categories.

A `Prompt` is a text plus `Constraints`: required objects (a shape, optionally a colour, a count
that is a minimum, or exact for counting prompts) and relations between them. `grade.satisfies`
checks an image against them. Categories (as in GenEval):
  single_object  "a circle"                          one circle
  two_object     "a circle and a box"                 a circle and a square
  counting       "three triangles"                    exactly three triangles
  colors         "a blue diamond"                     a blue diamond
  position       "a cross to the left of a ball"      a cross whose centre is left of a circle's
  color_attr     "a red square and a green cross"     a red square and a green cross
Objects other than the required ones are allowed (as in GenEval).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dialect.core.errors import DialectError
from dialect.world.language import NUMBER_WORDS, RELATION_WORDS, SYNONYMS, pick, plural, with_article
from dialect.world.scene import WorldConfig, allowed_pairs

CATEGORIES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


@dataclass(frozen=True)
class ObjSpec:
    """A required object: `shape`, optional `color`; `count` of them (at least, or exactly if `exact`)."""

    shape: str
    color: str | None = None
    count: int = 1
    exact: bool = False


@dataclass(frozen=True)
class RelSpec:
    """`objects[a] relation objects[b]`, relation in "left of" / "right of" / "above" / "below"."""

    a: int
    relation: str
    b: int


@dataclass(frozen=True)
class Constraints:
    """Everything an image must show to pass a prompt."""

    objects: tuple[ObjSpec, ...]
    relations: tuple[RelSpec, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """A generation prompt, its GenEval category and its constraints."""

    text: str
    category: str
    constraints: Constraints

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prompt:
        """Inverse of `to_dict`."""
        c = d["constraints"]
        cons = Constraints(
            tuple(ObjSpec(**o) for o in c["objects"]), tuple(RelSpec(**r) for r in c["relations"])
        )
        return cls(d["text"], d["category"], cons)


def _two_shapes(rng: np.random.Generator, cfg: WorldConfig) -> tuple[str, str]:
    i, j = rng.choice(len(cfg.shapes), size=2, replace=False)
    return cfg.shapes[int(i)], cfg.shapes[int(j)]


def _colored(
    rng: np.random.Generator, shape: str, pairs: list[tuple[str, str]], avoid: str | None = None
) -> str:
    colors = [c for c, s in pairs if s == shape and c != avoid]
    return pick(rng, colors)


def make_prompt(rng: np.random.Generator, cfg: WorldConfig, category: str, split: str = "all") -> Prompt:
    """One prompt of `category`. split "train" never names a held-out (color, shape) pair; "all" may."""
    if category not in CATEGORIES:
        raise DialectError(f"unknown prompt category '{category}'; choose one of {', '.join(CATEGORIES)}")
    if len(cfg.shapes) < 2:
        raise DialectError("prompts need a world with at least two shapes")
    pairs = allowed_pairs(cfg, "train" if split == "train" else "heldout")

    def noun(shape: str) -> str:
        return pick(rng, SYNONYMS[shape])

    if category == "single_object":
        s = pick(rng, cfg.shapes)
        return Prompt(with_article(noun(s)), category, Constraints((ObjSpec(s),)))
    if category == "two_object":
        s1, s2 = _two_shapes(rng, cfg)
        text = f"{with_article(noun(s1))} and {with_article(noun(s2))}"
        return Prompt(text, category, Constraints((ObjSpec(s1), ObjSpec(s2))))
    if category == "counting":
        s, n = pick(rng, cfg.shapes), int(rng.integers(2, max(cfg.max_objects, 2) + 1))
        return Prompt(
            f"{NUMBER_WORDS[n]} {plural(noun(s))}", category, Constraints((ObjSpec(s, count=n, exact=True),))
        )
    if category == "colors":
        s = pick(rng, cfg.shapes)
        c = _colored(rng, s, pairs)
        return Prompt(with_article(f"{c} {noun(s)}"), category, Constraints((ObjSpec(s, c),)))
    if category == "position":
        s1, s2 = _two_shapes(rng, cfg)
        rel = pick(rng, tuple(RELATION_WORDS))
        text = f"{with_article(noun(s1))} {pick(rng, RELATION_WORDS[rel])} {with_article(noun(s2))}"
        return Prompt(text, category, Constraints((ObjSpec(s1), ObjSpec(s2)), (RelSpec(0, rel, 1),)))
    s1, s2 = _two_shapes(rng, cfg)  # color_attr
    c1 = _colored(rng, s1, pairs)
    c2 = (
        _colored(rng, s2, pairs, avoid=c1)
        if any(s == s2 and c != c1 for c, s in pairs)
        else _colored(rng, s2, pairs)
    )
    text = f"{with_article(f'{c1} {noun(s1)}')} and {with_article(f'{c2} {noun(s2)}')}"
    return Prompt(text, category, Constraints((ObjSpec(s1, c1), ObjSpec(s2, c2))))


def make_prompts(
    n_per_category: int,
    seed: int,
    cfg: WorldConfig,
    categories: tuple[str, ...] = CATEGORIES,
    split: str = "all",
) -> list[Prompt]:
    """A fixed benchmark: n prompts per category, deterministic in `seed` (prompt i of a category
    does not depend on how many are asked for)."""
    out = []
    for cat in categories:
        if cat not in CATEGORIES:
            raise DialectError(f"unknown prompt category '{cat}'; choose from {', '.join(CATEGORIES)}")
        for i in range(n_per_category):
            rng = np.random.default_rng(np.random.SeedSequence([seed, 7, CATEGORIES.index(cat), i]))
            out.append(make_prompt(rng, cfg, cat, split))
    return out
