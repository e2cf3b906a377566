"""Does the LM bind colour to shape when it *describes* a scene, and does describing first help it
answer? On scenes of exactly K objects (VQA-mini's seed, train split):

- caption binding: the fraction of the scene's (colour, shape) pairs that the model's caption
  says as a colour word directly before a shape word ("a big red diamond"), and, for reference,
  the fraction of colours said at all (ignoring which shape they go with);
- VQA-mini per question type asked plainly, and asked after the model's own caption as an earlier
  turn (user: image + "describe the image." / assistant: its caption / user: the question). The
  LM was never trained on that second form, so this tests the inference-time trick only.

    python experiments/vqa_binding.py [--model DIR] [--n 60] [--objects 2 4]
Prints a markdown table (paste it into experiments/results/vqa_binding.md).
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from dialect.cli.eval import fixed_object_count
from dialect.core.images import to_tensor
from dialect.eval.understanding import EVAL_SEED, attribute_words, score_answers
from dialect.unified.pipeline import Dialect
from dialect.unified.tasks import REQUESTS
from dialect.world import QA_TYPES, make_example


def said_pairs(caption: str) -> Counter:
    """(colour, shape) pairs a caption states as a colour word right before a shape word."""
    words = attribute_words(caption)
    return Counter(
        (a[1], b[1])
        for a, b in zip(words, words[1:], strict=False)
        if a and b and a[0] == "color" and b[0] == "shape"
    )


def accuracy(answers: list[str], qas: list[dict]) -> dict[str, float]:
    """Per question type and overall, as VQA-mini scores them."""
    scores = score_answers(answers, qas)
    return {**{t: v["value"] for t, v in scores["by_type"].items()}, "overall": scores["overall"]["value"]}


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="Dialect folder (default: the shipped model)")
    ap.add_argument("--n", type=int, default=60, help="scenes per object count")
    ap.add_argument("--objects", type=int, nargs="+", default=[2, 4])
    args = ap.parse_args()
    d = Dialect.from_pretrained(args.model)
    request = REQUESTS["caption"][0]
    rows = []
    for k in args.objects:
        world = fixed_object_count(k, d.image_size)
        exs = [make_example(i, EVAL_SEED, world, "train", with_edits=False) for i in range(args.n)]
        spans = d.tar.image_spans(torch.stack([to_tensor(e["image"]) for e in exs]))
        caps = d.tar.generate_text([[("user", [s, request])] for s in spans], 48)
        true = [Counter((o.color, o.shape) for o in e["scene"].objects) for e in exs]
        pairs = sum(sum((said_pairs(c) & t).values()) for c, t in zip(caps, true, strict=True)) / (k * args.n)
        colours = sum(
            sum((Counter(c for c, _ in said_pairs(cap)) & Counter(c for c, _ in t)).values())
            for cap, t in zip(caps, true, strict=True)
        ) / (k * args.n)
        items = [(i, qa) for i, e in enumerate(exs) for qa in e["qa"]]
        qas = [qa for _, qa in items]
        plain = d.tar.generate_text([[("user", [spans[i], qa["question"]])] for i, qa in items], 8)
        first = d.tar.generate_text(
            [
                [("user", [spans[i], request]), ("assistant", [caps[i]]), ("user", [qa["question"]])]
                for i, qa in items
            ],
            8,
        )
        for name, answers in (("asked plainly", plain), ("asked after its own caption", first)):
            acc = accuracy(answers, qas)
            rows.append(
                f"| {k} | {pairs:.3f} | {colours:.3f} | {name} | {acc['overall']:.3f} | "
                + " | ".join(f"{acc.get(t, float('nan')):.2f}" for t in QA_TYPES)
                + " |"
            )
    print(f"model: {d.path}; {args.n} scenes per K; seed {EVAL_SEED}, train split\n")
    print("| K | caption: colour-shape pairs right | caption: colours right (unbound) | VQA | overall | "
          + " | ".join(QA_TYPES) + " |")  # fmt: skip
    print("|---" * (5 + len(QA_TYPES)) + "|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
