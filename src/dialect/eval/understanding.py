"""VQA-mini and caption attribute F1 on fresh ShapeWorld scenes (DESIGN: "VQA-mini").

- VQA-mini: every question of each scene (colour, shape, size, count, existence, position), asked
  of the model's `ask`; exact match of the one-word answer (lower-cased, stripped), per question
  type and overall, with Wilson 95% intervals.
- Caption attribute F1: the multiset of attribute words a caption mentions (shapes with their
  synonyms, colours, sizes with theirs, mapped to canonical values) against the scene's (one shape,
  colour and size per object); F1 per caption, averaged, with a bootstrap 95% interval. A complete
  reference caption scores 1.0; positions and counts are not scored.
"""

from __future__ import annotations

import re
from collections import Counter

from tqdm import tqdm

from dialect.eval.stats import bootstrap_mean, proportion
from dialect.world import QA_TYPES, WorldConfig, make_example
from dialect.world.language import SIZE_WORDS, SYNONYMS, plural
from dialect.world.scene import PALETTE, Scene

EVAL_SEED = 4_000_037
_WORD = {w: ("shape", s) for s, ws in SYNONYMS.items() for w in ws}
_WORD.update({w: ("color", c) for c in PALETTE for w in [c]})
_WORD.update({w: ("size", s) for s, ws in SIZE_WORDS.items() for w in ws})
_PLURALS = {plural(w): w for ws in SYNONYMS.values() for w in ws}


def attribute_words(text: str) -> list[tuple[str, str] | None]:
    """Each word of `text` in order, as (kind, canonical value) when it names an attribute
    (synonyms and plurals mapped: "boxes" -> ("shape", "square")), else None."""
    words = (_PLURALS.get(w, w) for w in re.findall(r"[a-z]+", text.lower()))
    return [_WORD.get(w) for w in words]


def caption_attributes(text: str) -> Counter:
    """Attribute values a caption mentions, e.g. Counter({("color", "red"): 1, ("shape", "circle"): 2})."""
    return Counter(a for a in attribute_words(text) if a is not None)


def answer_matches(got: str, answer: str) -> bool:
    """VQA-mini's exact match: the one-word answer, lower-cased and stripped."""
    return got.strip().lower() == answer.strip().lower()


def scene_attributes(scene: Scene) -> Counter:
    return Counter(
        kv for o in scene.objects for kv in (("shape", o.shape), ("color", o.color), ("size", o.size))
    )


def attribute_f1(text: str, scene: Scene) -> float:
    said, true = caption_attributes(text), scene_attributes(scene)
    hit = sum((said & true).values())
    total = sum(said.values()) + sum(true.values())
    return 2 * hit / total if total else 1.0


def _examples(n: int, seed: int, split: str, world: WorldConfig) -> list[dict]:
    return [make_example(i, seed, world, split, with_edits=False) for i in range(n)]


def score_answers(answers: list[str], qas: list[dict], max_failures: int = 20) -> dict:
    """Answers to ShapeWorld questions (`qa` dicts: question, answer, type) -> {"overall",
    "by_type": {qtype: proportion with its interval}, "failures": the first wrong answers}."""
    hits, totals, failures = Counter(), Counter(), []
    for got, qa in zip(answers, qas, strict=True):
        ok = answer_matches(got, qa["answer"])
        hits[qa["type"]] += ok
        totals[qa["type"]] += 1
        if not ok and len(failures) < max_failures:
            failures.append({"question": qa["question"], "answer": qa["answer"], "got": got})
    by_type = {t: proportion(hits[t], totals[t]) for t in QA_TYPES if totals[t]}
    return {
        "overall": proportion(sum(hits.values()), sum(totals.values())),
        "by_type": by_type,
        "failures": failures,
    }


def vqa_mini(model, n: int = 200, seed: int = EVAL_SEED, split: str = "train", batch_size: int = 500,
             world: WorldConfig | None = None, progress: bool = True) -> dict:  # fmt: skip
    """All questions of `n` scenes -> {"overall", "by_type": {qtype: ...}, "n_scenes", "seed", "split",
    "failures": first few wrong answers}. Questions go to `model.ask` `batch_size` at a time, and
    the LM decodes those of equal prompt length together: large chunks keep its batches full, which
    matters when answers are long (a model that describes, then answers)."""
    world = world or WorldConfig(size=model.image_size)
    exs = _examples(n, seed, split, world)
    items = [(ex["image"], qa) for ex in exs for qa in ex["qa"]]
    answers: list[str] = []
    for start in tqdm(range(0, len(items), batch_size), desc="vqa-mini", disable=not progress):
        chunk = items[start : start + batch_size]
        answers += model.ask([img for img, _ in chunk], [qa["question"] for _, qa in chunk])
    scores = score_answers(answers, [qa for _, qa in items])
    return {"benchmark": "vqa-mini", **scores, "n_scenes": n, "seed": seed, "split": split}


def caption_f1(model, n: int = 200, seed: int = EVAL_SEED, split: str = "train", batch_size: int = 50,
               world: WorldConfig | None = None, progress: bool = True) -> dict:  # fmt: skip
    """Caption `n` scenes -> {"f1": {"value", "n", "ci95"}, "examples": [...]}."""
    world = world or WorldConfig(size=model.image_size)
    exs = _examples(n, seed, split, world)
    f1s, examples = [], []
    for start in tqdm(range(0, n, batch_size), desc="caption", disable=not progress):
        chunk = exs[start : start + batch_size]
        for ex, text in zip(chunk, model.caption([e["image"] for e in chunk]), strict=True):
            f1s.append(attribute_f1(text, ex["scene"]))
            if len(examples) < 20:
                examples.append({"caption": text, "reference": ex["captions"][0], "f1": round(f1s[-1], 3)})
    lo, hi = bootstrap_mean(f1s)
    value = sum(f1s) / len(f1s)
    return {"benchmark": "caption-f1", "f1": {"value": value, "n": n, "ci95": [round(lo, 4), round(hi, 4)]},
            "seed": seed, "split": split, "examples": examples}  # fmt: skip
