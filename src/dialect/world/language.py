"""Words about scenes: vocabulary, referring expressions, captions and question-answer pairs.

Everything is a pure function of (rng, scene, cfg), so an example's text is as deterministic as its
pixels. Captions vary templates, synonyms ("ball" / "circle", "box" / "square"), orderings, spatial
relations and counts; they never say anything false about the scene. Answers are one canonical
word: a colour ("red"), a shape ("circle", never a synonym), a size ("small"), a digit ("2"),
"yes"/"no", a column ("left"/"center"/"right"), a row ("top"/"middle"/"bottom") or a relation
("left"/"right"/"above"/"below"). A question names an object only by a description that picks out
exactly one object of the scene, and records the objects it is about ("refs"). `scene_description`
writes a scene (or some of its objects) in canonical words, left to right.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from dialect.world.scene import Obj, Scene, WorldConfig, allowed_pairs

SYNONYMS = {
    "circle": ("circle", "ball", "disk"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus"),
}
PLURAL = {"box": "boxes", "cross": "crosses", "plus": "pluses", "rhombus": "rhombuses"}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six")
GENERIC = ("shape", "object")
RELATION_WORDS = {
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "above": ("above",),
    "below": ("below", "under"),
}
# Referring expressions, most preferred first: which attributes name one object.
REFERENCE_ATTRS = (("shape",), ("color", "shape"), ("size", "shape"), ("size", "color", "shape"))
QA_TYPES = ("color", "shape", "size", "count", "existence", "position")


def pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    """One option, uniformly."""
    return options[int(rng.random() * len(options))]


def plural(word: str) -> str:
    """English plural of a shape noun."""
    return PLURAL.get(word, word + "s")


def with_article(phrase: str) -> str:
    """'a red ball' / 'an orange box'."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(
    rng: np.random.Generator, obj: Obj, attrs: tuple[str, ...] = ("size", "color", "shape")
) -> str:
    """Words for `obj` using only `attrs` (e.g. 'small red ball'); without 'shape' the noun is generic."""
    words = []
    if "size" in attrs:
        words.append(pick(rng, SIZE_WORDS[obj.size]))
    if "color" in attrs:
        words.append(obj.color)
    words.append(pick(rng, SYNONYMS[obj.shape]) if "shape" in attrs else pick(rng, GENERIC))
    return " ".join(words)


def where_phrase(column: str, row: str) -> str:
    """Bucket as a phrase: 'in the center', 'on the left', 'at the top', 'at the bottom right'."""
    if row == "middle":
        return "in the center" if column == "center" else f"on the {column}"
    return f"at the {row}" if column == "center" else f"at the {row} {column}"


def _matches(obj: Obj, ref: Obj, attrs: tuple[str, ...]) -> bool:
    return all(getattr(obj, a) == getattr(ref, a) for a in attrs)


def reference(
    obj: Obj, scene: Scene, allowed: tuple[tuple[str, ...], ...] = REFERENCE_ATTRS
) -> tuple[str, ...] | None:
    """The first attribute set in `allowed` that describes `obj` and no other object; None if none does."""
    for attrs in allowed:
        if sum(_matches(o, obj, attrs) for o in scene.objects) == 1:
            return attrs
    return None


def relation(a: Obj, b: Obj, cfg: WorldConfig, axis: str) -> str | None:
    """'left of'/'right of' (axis 'x') or 'above'/'below' (axis 'y'); None if centres are closer
    than cfg.relation_margin on that axis."""
    d = (a.x - b.x) if axis == "x" else (a.y - b.y)
    if abs(d) < cfg.relation_margin:
        return None
    if axis == "x":
        return "left of" if d < 0 else "right of"
    return "above" if d < 0 else "below"


def join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _relation_caption(rng: np.random.Generator, scene: Scene, cfg: WorldConfig) -> str | None:
    objs = scene.objects
    facts = [
        (i, j, rel)
        for i in range(len(objs))
        for j in range(len(objs))
        if i != j
        for rel in (relation(objs[i], objs[j], cfg, "x"), relation(objs[i], objs[j], cfg, "y"))
        if rel
    ]
    if not facts:
        return None
    i, j, rel = facts[int(rng.integers(len(facts)))]
    a, b = with_article(noun_phrase(rng, objs[i])), with_article(noun_phrase(rng, objs[j]))
    text = f"{a} {pick(rng, RELATION_WORDS[rel])} {b}"
    rest = [with_article(noun_phrase(rng, o)) for k, o in enumerate(objs) if k not in (i, j)]
    return text + (f", and {join(rest)}" if rest else "")


def _count_caption(rng: np.random.Generator, scene: Scene, by: str) -> str:
    counts = Counter(getattr(o, by) for o in scene.objects)
    generic = pick(rng, GENERIC)
    parts = []
    for value in sorted(counts, key=lambda v: float(rng.random())):
        n = counts[value]
        if by == "color":
            parts.append(f"{NUMBER_WORDS[n]} {value} {plural(generic) if n > 1 else generic}")
        else:
            noun = pick(rng, SYNONYMS[value])
            parts.append(f"{NUMBER_WORDS[n]} {plural(noun)}" if n > 1 else with_article(noun))
    return join(parts)


def captions(rng: np.random.Generator, scene: Scene, cfg: WorldConfig) -> list[str]:
    """Several true captions (4-6): a full list, a list with positions, a relation, counts by colour/shape.

    The first two are complete (every object with its size, colour and shape; the second adds
    positions): Tar answers a caption request with one of them."""
    objs = list(scene.objects)
    order = [objs[int(k)] for k in rng.permutation(len(objs))]
    full = join([with_article(noun_phrase(rng, o)) for o in order])
    lead = (
        pick(rng, ("", "there is ", "an image of ", "a picture with "))
        if len(objs) == 1
        else pick(rng, ("", "there are ", "an image of ", "a picture with "))
    )
    out = [lead + full]
    order = [objs[int(k)] for k in rng.permutation(len(objs))]
    out.append(join([f"{with_article(noun_phrase(rng, o))} {where_phrase(o.column, o.row)}" for o in order]))
    rel = _relation_caption(rng, scene, cfg)
    if rel:
        out.append(rel)
    out.append(_count_caption(rng, scene, "color"))
    out.append(_count_caption(rng, scene, "shape"))
    n = len(objs)
    total = f"{NUMBER_WORDS[n]} {plural('shape') if n > 1 else 'shape'}: "
    out.append(total + join([with_article(noun_phrase(rng, o, ("color", "shape"))) for o in order]))
    return out


def scene_description(scene: Scene, objects: list[Obj] | None = None) -> str:
    """Every object (or those of `objects`) in canonical words, left to right: "size colour shape
    column row" joined by ", " (e.g. "large green cross center top, small blue cross right
    bottom"); "none" for no object. Deterministic, with no synonyms, so that a question's answer is
    a word of it (a colour, shape, size, column or row) or follows from it (a count, existence,
    the order of two objects left to right). Tar writes it before answering
    (`TaskConfig.vqa_reason`)."""
    objs = sorted(scene.objects if objects is None else objects, key=lambda o: (o.x, o.y))
    return ", ".join(f"{o.size} {o.color} {o.shape} {o.column} {o.row}" for o in objs) or "none"


def _qa(question: str, answer: str, qtype: str, scene: Scene, about: list[Obj]) -> dict:
    """A question-answer pair; "refs" indexes the objects of `scene.objects` the question is
    about (its named object(s), or every object a count or existence question matches)."""
    refs = [i for i, o in enumerate(scene.objects) if any(o is a for a in about)]
    return {"question": question, "answer": answer, "type": qtype, "refs": refs}


def _sample(rng: np.random.Generator, items: list, k: int) -> list:
    """k items without replacement, in their original order (all of them if there are <= k)."""
    if len(items) <= k:
        return items
    return [items[int(i)] for i in sorted(rng.permutation(len(items))[:k])]


def _attribute_questions(rng: np.random.Generator, scene: Scene) -> list[dict]:
    """Up to 2 questions each about colour, shape and size of uniquely named objects."""
    asks = {  # type -> (allowed references, question templates)
        "color": ((("shape",), ("size", "shape")), ("What color is the {}?",)),
        "shape": ((("color",), ("size", "color")), ("What shape is the {}?",)),
        "size": (
            (("shape",), ("color", "shape")),
            ("Is the {} small or large?", "What size is the {}?", "Is the {} big or small?"),
        ),
    }
    out = []
    for qtype, (allowed, templates) in asks.items():
        cands = [(o, ref) for o in scene.objects if (ref := reference(o, scene, allowed))]
        for o, ref in _sample(rng, cands, 2):
            q = pick(rng, templates).format(noun_phrase(rng, o, ref))
            out.append(_qa(q, getattr(o, qtype), qtype, scene, [o]))
    return out


def _count_questions(rng: np.random.Generator, scene: Scene, cfg: WorldConfig) -> list[dict]:
    objs = scene.objects
    noun = pick(rng, GENERIC)
    out = [_qa(f"How many {plural(noun)} are there?", str(len(objs)), "count", scene, list(objs))]
    present = sorted({o.color for o in objs})
    for color in (pick(rng, present), pick(rng, cfg.colors)):
        found = [o for o in objs if o.color == color]
        q = f"How many {color} {plural(pick(rng, GENERIC))} are there?"
        out.append(_qa(q, str(len(found)), "count", scene, found))
    shape = pick(rng, cfg.shapes)
    found = [o for o in objs if o.shape == shape]
    q = f"How many {plural(pick(rng, SYNONYMS[shape]))} are there?"
    out.append(_qa(q, str(len(found)), "count", scene, found))
    return out


def _existence_questions(rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str) -> list[dict]:
    o = scene.objects[int(rng.integers(len(scene.objects)))]
    q = f"Is there {with_article(noun_phrase(rng, o, ('color', 'shape')))}?"
    same = [x for x in scene.objects if (x.color, x.shape) == (o.color, o.shape)]
    out = [_qa(q, "yes", "existence", scene, same)]
    present = {(x.color, x.shape) for x in scene.objects}
    absent = [p for p in allowed_pairs(cfg, split) if p not in present]
    if absent:
        color, shape = absent[int(rng.integers(len(absent)))]
        q = f"Is there {with_article(color + ' ' + pick(rng, SYNONYMS[shape]))}?"
        out.append(_qa(q, "no", "existence", scene, []))
    shape = pick(rng, cfg.shapes)
    found = [x for x in scene.objects if x.shape == shape]
    q = f"Is there {with_article(pick(rng, SYNONYMS[shape]))}?"
    out.append(_qa(q, "yes" if found else "no", "existence", scene, found))
    return out


def _position_questions(rng: np.random.Generator, scene: Scene, cfg: WorldConfig) -> list[dict]:
    """Up to 3 questions: the column or row of a named object, or its relation to another one."""
    named = [(o, ref) for o in scene.objects if (ref := reference(o, scene))]
    cands = [(kind, a, None) for a in named for kind in ("column", "row")]
    for a in named:
        for b in named:
            if a is not b:
                cands += [(axis, a, b) for axis in ("x", "y") if relation(a[0], b[0], cfg, axis)]
    out = []
    for kind, (a, ra), b in _sample(rng, cands, 3):
        na = noun_phrase(rng, a, ra)
        if kind == "column":
            q = f"Is the {na} on the left, in the center or on the right?"
            out.append(_qa(q, a.column, "position", scene, [a]))
        elif kind == "row":
            q = f"Is the {na} at the top, in the middle or at the bottom?"
            out.append(_qa(q, a.row, "position", scene, [a]))
        else:
            nb, rel = noun_phrase(rng, b[0], b[1]), relation(a, b[0], cfg, kind)
            if kind == "x":
                q = f"Is the {na} to the left or to the right of the {nb}?"
                out.append(_qa(q, rel.split()[0], "position", scene, [a, b[0]]))
            else:
                q = f"Is the {na} above or below the {nb}?"
                out.append(_qa(q, rel, "position", scene, [a, b[0]]))
    return out


def questions(rng: np.random.Generator, scene: Scene, cfg: WorldConfig, split: str = "train") -> list[dict]:
    """Question-answer pairs {"question", "answer", "type", "refs"}: up to 2 per attribute type, 3 counts,
    up to 3 existence and 3 position questions. In train/val no held-out pair is ever named."""
    out = _attribute_questions(rng, scene)
    out += _sample(rng, _count_questions(rng, scene, cfg), 3)
    out += _existence_questions(rng, scene, cfg, split)
    out += _position_questions(rng, scene, cfg)
    return out
