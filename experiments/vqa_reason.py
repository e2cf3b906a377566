"""Describe, then answer (`model.tasks.vqa_reason`): does writing the scene out before answering
fix VQA-mini's binding failures, and does the answer follow what the LM wrote?

For each model, on VQA-mini's fixed scenes (train split unless --split):
- accuracy per question type, position questions split by kind (column, row, left/right of,
  above/below) and overall accuracy per object count K;
- for a model that reasons (its replies hold `answer:`): the share of replies whose scene
  description is exactly right, whose list of the asked-about objects is exactly right, and, for
  questions about one object whose answer is a word of its entry (colour, shape, size, column, row),
  the share of answers that are a word of the entry the LM itself wrote ("follows its own words");
  and the share of asked-about object lists exactly right per question kind, and for questions
  with and without a word a description never uses (a synonym such as "ball", "plus", "tiny").

    python experiments/vqa_reason.py MODEL [MODEL ...] [--text MODEL ...] [--n 200] [--split train]
--text: also ask these models each question after the scene written out, with no image (the
text-only `tqa` task): whether the LM can do the lookup in text when taught it directly.
MODEL: a Dialect folder, or "shipped". Writes experiments/results/vqa_reason.{json,md} by default.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from dialect.eval.understanding import EVAL_SEED, _examples, answer_matches
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import ANSWER_MARK, final_answer, reasoned
from dialect.world import WorldConfig, scene_description
from dialect.world.language import PLURAL, SIZE_WORDS, SYNONYMS

try:
    from experiments.report import machine, write_results
except ImportError:  # run as a script from the repo root
    from report import machine, write_results

POSITION_KINDS = (
    ("column", "in the center or on the right"),
    ("row", "in the middle or at the bottom"),
    ("left/right of", "to the left or to the right of"),
    ("above/below", "above or below the"),
)
ENTRY_TYPES = ("color", "shape", "size")  # + column/row questions: the answer is a word of the entry


def kind(qa: dict) -> str:
    """The question's type, position questions split by kind ("position: column", ...)."""
    if qa["type"] != "position":
        return qa["type"]
    return "position: " + next(name for name, text in POSITION_KINDS if text in qa["question"])


# words a question may use that a scene description never does (it names shapes and sizes canonically)
SYNONYM_WORDS = {w for ws in (*SYNONYMS.values(), *SIZE_WORDS.values()) for w in ws[1:]} | {
    PLURAL.get(w, w + "s") for ws in SYNONYMS.values() for w in ws[1:]
}


def synonym(question: str) -> bool:
    return any(w in SYNONYM_WORDS for w in question.lower().rstrip("?").split())


def parts(reply: str) -> tuple[str, str, str] | None:
    """A reasoned reply -> (description, asked-about objects, answer); None if it is not one."""
    text = reply.replace(" ,", ",").replace(" ;", ";").replace(" :", ":")
    pieces = text.split("; ")
    if len(pieces) != 3 or not pieces[2].startswith(ANSWER_MARK):
        return None
    return pieces[0].strip(), pieces[1].strip(), final_answer(pieces[2])


def load(model: str, n: int, split: str) -> tuple[Dialect, list[tuple[dict, dict]]]:
    """The model ("shipped" = the default one) and every (example, question) of n VQA-mini scenes."""
    d = Dialect.from_pretrained(None if model == "shipped" else model)
    exs = _examples(n, EVAL_SEED, split, WorldConfig(size=d.image_size))
    return d, [(ex, qa) for ex in exs for qa in ex["qa"]]


@torch.no_grad()
def measure(model: str, n: int, split: str, batch: int = 500) -> dict:
    d, items = load(model, n, split)
    t0, replies = time.perf_counter(), []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        replies += d.ask([ex["image"] for ex, _ in chunk], [qa["question"] for _, qa in chunk], explain=True)
    seconds = time.perf_counter() - t0
    hit, tot, why, lookup, asked = Counter(), Counter(), Counter(), Counter(), Counter()
    for (ex, qa), reply in zip(items, replies, strict=True):
        ok = answer_matches(final_answer(reply), qa["answer"])
        for key in ("overall", kind(qa), f"K={len(ex['scene'].objects)}"):
            hit[key] += ok
            tot[key] += 1
        got = parts(reply)
        why["replies"] += 1
        if got is None:
            continue
        why["reasoned"] += 1
        truth = parts(reasoned(ex["scene"], qa))
        why["description right"] += got[0] == truth[0]
        why["objects right"] += got[1] == truth[1]
        for key in (kind(qa), "synonym" if synonym(qa["question"]) else "canonical words"):
            lookup[key] += got[1] == truth[1]
            asked[key] += 1
        single = len(qa["refs"]) == 1 and (
            qa["type"] in ENTRY_TYPES or kind(qa) in ("position: column", "position: row")
        )
        if single and "," not in got[1]:
            why["single"] += 1
            why["follows its own words"] += got[2] in got[1].split()
    acc = {k: hit[k] / tot[k] for k in tot}
    reasoning = {}
    if why["reasoned"]:
        reasoning = {
            "reasoned replies": why["reasoned"] / why["replies"],
            "description right": why["description right"] / why["reasoned"],
            "objects right": why["objects right"] / why["reasoned"],
            "follows its own words": why["follows its own words"] / max(why["single"], 1),
            "objects right by kind": {k: lookup[k] / asked[k] for k in asked},
        }
    return {"model": model, "accuracy": acc, "counts": dict(tot), "reasoning": reasoning,
            "seconds": seconds, "questions": len(items)}  # fmt: skip


@torch.no_grad()
def measure_text(model: str, n: int, split: str) -> dict:
    """The same questions asked about the scene written out (`tqa`: "<description>; <question>", no
    image): can the LM look an object up in text at all?"""
    d, items = load(model, n, split)
    convs = [[("user", [f"{scene_description(ex['scene'])}; {qa['question']}"])] for ex, qa in items]
    t0 = time.perf_counter()
    replies = d.tar.generate_text(convs, d.reply_tokens)
    seconds = time.perf_counter() - t0
    hit, tot = Counter(), Counter()
    for (_, qa), reply in zip(items, replies, strict=True):
        for key in ("overall", kind(qa)):
            hit[key] += answer_matches(final_answer(reply), qa["answer"])
            tot[key] += 1
    return {"model": f"{model} (scene in words, no image)", "accuracy": {k: hit[k] / tot[k] for k in tot},
            "counts": dict(tot), "reasoning": {}, "seconds": seconds, "questions": len(items)}  # fmt: skip


def table(rows: list[dict], n: int, split: str, title: str, command: str) -> str:
    keys = ["overall", "color", "shape", "size", "count", "existence"]
    keys += [f"position: {name}" for name, _ in POSITION_KINDS] + [f"K={k}" for k in range(1, 5)]
    keys = [k for k in keys if any(k in r["accuracy"] for r in rows)]
    extra = ["description right", "objects right", "follows its own words"]
    head = "| model | " + " | ".join(keys + extra) + " | s / question |"
    lines = [head, "|" + "---|" * (len(keys) + len(extra) + 2)]
    for r in rows:
        cells = [f"{r['accuracy'][k]:.3f}" if k in r["accuracy"] else "-" for k in keys]
        cells += [f"{r['reasoning'][k]:.3f}" if k in r["reasoning"] else "-" for k in extra]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {r['seconds'] / r['questions']:.4f} |")
    reasoning = [r for r in rows if r["reasoning"]]
    if reasoning:
        kinds = [
            k
            for k in [*keys[1:], "canonical words", "synonym"]
            if k in reasoning[0]["reasoning"]["objects right by kind"]
        ]
        lines += ["", "Asked-about objects listed exactly right, by question kind (reasoning models):", ""]
        lines += ["| model | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
        for r in reasoning:
            by = r["reasoning"]["objects right by kind"]
            lines.append(f"| {r['model']} | " + " | ".join(f"{by[k]:.3f}" for k in kinds) + " |")
    counts = ", ".join(f"{k} {rows[0]['counts'][k]}" for k in keys if k in rows[0]["counts"])
    return (
        f"# {title}\n\nCommand: `{command}`; VQA-mini's fixed scenes (seed "
        f"{EVAL_SEED}), {split} split, greedy answers; questions per column: {counts}. {machine()}.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help='Dialect folders, or "shipped"')
    ap.add_argument("--n", type=int, default=200, help="scenes")
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--out", default="experiments/results/vqa_reason")
    ap.add_argument("--title", default="Describe, then answer: VQA-mini by question kind")
    ap.add_argument(
        "--text", nargs="*", default=[],
        help="models also asked with the scene written out instead of the image (model.tasks.weights.tqa)",
    )  # fmt: skip
    args = ap.parse_args()
    rows = [measure(m, args.n, args.split) for m in args.models]
    rows += [measure_text(m, args.n, args.split) for m in args.text]
    write_results(Path(args.out), {"n": args.n, "split": args.split, "machine": machine(), "rows": rows},
                  table(rows, args.n, args.split, args.title, "python " + shlex.join(sys.argv)))  # fmt: skip


if __name__ == "__main__":
    main()
