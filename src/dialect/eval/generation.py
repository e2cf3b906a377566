"""GenEval-mini (text -> image) and Edit-mini (image + instruction -> image) on ShapeWorld.

- GenEval-mini: `n_per_category` prompts in each of GenEval's six categories (world.prompts, fixed
  by `seed` and versioned with the code), `images_per_prompt` images each (GenEval: 4); an image
  passes when the grader's reading of it meets every constraint of its prompt. Reported per
  category and overall (the mean of the categories, as GenEval does), with Wilson 95% intervals;
  images of prompts naming a held-out (colour, shape) pair are also reported on their own.
- Edit-mini: fresh scenes with one edit each (recolor / remove / add / move / resize); an output
  passes when its graded scene equals the target scene. Per edit type and overall.
- `oracle=True` (both): no LM. Each image is instead the render of a scene that meets the prompt
  (`world.realize`) or of the edit's target, tokenized by the model's TA-Tok and painted back by the
  de-tokenizer (`Dialect.reconstruct`): what a perfect LM would score with this tokenizer and
  de-tokenizer, i.e. how much of the gap to 1.0 the drawing chain leaves.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from tqdm import tqdm

from dialect.core.errors import DialectError
from dialect.core.images import to_uint8
from dialect.eval.stats import proportion
from dialect.world import (
    CATEGORIES,
    EDIT_TYPES,
    WorldConfig,
    make_example,
    make_prompts,
    parse_image,
    realize,
    render,
    satisfies,
)
from dialect.world.grade import scene_equal
from dialect.world.scene import heldout_set

GENEVAL_SEED = 5_000_011
EDIT_SEED = 6_000_029
PROMPT_SET_VERSION = 1  # bump when world.prompts changes what a (seed, index) prompt is
LM_SAMPLING = ("temperature", "top_k", "top_p", "cfg_scale")


def _check_oracle(oracle: bool, sampling: dict) -> None:
    """An oracle run writes no LM tokens, so LM sampling settings would silently do nothing."""
    given = [k for k in LM_SAMPLING if sampling.get(k) is not None]
    if oracle and given:
        raise DialectError(f"an oracle run draws no LM tokens; drop {', '.join(given)}")


def geneval_mini(model, n_per_category: int = 20, images_per_prompt: int = 4, seed: int = GENEVAL_SEED,
                 split: str = "all", scale: int = 0, decoder: str | None = None, progress: bool = True,
                 world: WorldConfig | None = None, oracle: bool = False,
                 **sampling) -> tuple[dict, dict]:  # fmt: skip
    """-> (results, {"pass": [uint8 images], "fail": [...]}) (up to 16 examples each).
    `decoder` None: the model's default de-tokenizer (the results name the one used). `oracle`:
    the prompt's scenes painted back from their own codes instead of the LM's (module docstring)."""
    _check_oracle(oracle, sampling)
    world = world or WorldConfig(size=model.image_size)
    decoder = model.resolve_decoder(decoder)
    prompts = make_prompts(n_per_category, seed, world, split=split)
    hits, totals = Counter(), Counter()
    examples: dict[str, list[np.ndarray]] = {"pass": [], "fail": []}
    failures = []
    held = heldout_set(world)
    for i, p in enumerate(tqdm(prompts, desc="geneval-mini", disable=not progress)):
        unseen = any((o.color, o.shape) in held for o in p.constraints.objects if o.color)
        if oracle:
            rng = np.random.default_rng(seed + i)
            scenes = [render(realize(rng, p, world), world) for _ in range(images_per_prompt)]
            drawn = model.reconstruct(scenes, scale, decoder, seed=seed + i, **sampling)
        else:
            drawn = model.generate(p.text, n=images_per_prompt, scale=scale, decoder=decoder, seed=seed + i,
                                   **sampling)  # fmt: skip
        images = to_uint8(drawn)
        for img in images:
            ok = satisfies(img, p, world)
            hits[p.category] += ok
            totals[p.category] += 1
            hits["unseen" if unseen else "seen"] += ok
            totals["unseen" if unseen else "seen"] += 1
            bucket = examples["pass" if ok else "fail"]
            if len(bucket) < 16:
                bucket.append(img)
            if not ok and len(failures) < 20:
                failures.append(p.text)
    by_cat = {c: proportion(hits[c], totals[c]) for c in CATEGORIES if totals[c]}
    overall = float(np.mean([v["value"] for v in by_cat.values()]))
    results = {"benchmark": "geneval-mini", "overall": overall, "by_category": by_cat,
               "all_images": proportion(sum(hits[c] for c in CATEGORIES), sum(totals[c] for c in CATEGORIES)),
               # images of prompts that name a held-out (colour, shape) pair, and of the others
               "heldout_pairs": proportion(hits["unseen"], totals["unseen"]),
               "seen_pairs": proportion(hits["seen"], totals["seen"]),
               "n_per_category": n_per_category, "images_per_prompt": images_per_prompt, "seed": seed,
               "prompt_set_version": PROMPT_SET_VERSION, "split": split, "scale": scale, "decoder": decoder,
               "oracle": oracle, "sampling": sampling, "failed_prompts": failures}  # fmt: skip
    return results, examples


def edit_items(n: int, seed: int, world: WorldConfig, split: str = "train") -> list[tuple[dict, dict]]:
    """Edit-mini's n (example, edit) pairs: scene i (redrawn until it has an edit) with its edit
    i mod the number it has, so every edit type comes up."""
    items = []
    for i in range(n):
        ex, attempt = make_example(i, seed, world, split), 0
        while not ex["edits"]:
            attempt += 1
            ex = make_example(i, seed, world, split, attempt=attempt)
        items.append((ex, ex["edits"][i % len(ex["edits"])]))
    return items


def edit_mini(model, n: int = 200, seed: int = EDIT_SEED, split: str = "train", scale: int = 0,
              decoder: str | None = None, batch_size: int = 25, progress: bool = True,
              world: WorldConfig | None = None, oracle: bool = False,
              **sampling) -> tuple[dict, dict]:  # fmt: skip
    """-> (results, {"pass": [source|output pairs], "fail": [...]}); `decoder` and `oracle` (each
    edit's target painted back from its own codes) as in `geneval_mini`."""
    _check_oracle(oracle, sampling)
    world = world or WorldConfig(size=model.image_size)
    decoder = model.resolve_decoder(decoder)
    items = [(ex["image"], edit) for ex, edit in edit_items(n, seed, world, split)]
    hits, totals = Counter(), Counter()
    examples: dict[str, list[np.ndarray]] = {"pass": [], "fail": []}
    for b, start in enumerate(tqdm(range(0, n, batch_size), desc="edit-mini", disable=not progress)):
        chunk = items[start : start + batch_size]
        if oracle:
            targets = [render(e["target"], world) for _, e in chunk]
            out = model.reconstruct(targets, scale, decoder, seed=seed + b, **sampling)
        else:
            out = model.edit([img for img, _ in chunk], [e["instruction"] for _, e in chunk], scale=scale,
                             decoder=decoder, seed=seed + b, **sampling)  # fmt: skip
        for (src, edit), img in zip(chunk, to_uint8(out), strict=True):
            ok = scene_equal(parse_image(img, world), edit["target"])
            hits[edit["type"]] += ok
            totals[edit["type"]] += 1
            bucket = examples["pass" if ok else "fail"]
            if len(bucket) < 16:
                bucket += [src, img]
    by_type = {t: proportion(hits[t], totals[t]) for t in EDIT_TYPES if totals[t]}
    overall = proportion(sum(hits.values()), sum(totals.values()))
    return {"benchmark": "edit-mini", "overall": overall, "by_type": by_type, "n": n, "seed": seed,
            "split": split, "scale": scale, "decoder": decoder, "oracle": oracle,
            "sampling": sampling}, examples  # fmt: skip


FID_SEED = 7_000_003


def generation_fid(model, network, network_name: str, n: int = 500, seed: int = FID_SEED, scale: int = 0,
                   decoder: str | None = None, batch_size: int = 16, progress: bool = True,
                   world: WorldConfig | None = None, **sampling) -> tuple[dict, dict]:  # fmt: skip
    """FID / KID of text-to-image samples against renders of the scenes their prompts describe.

    n fresh training-split scenes (fixed by `seed`); each is rendered (the real set) and its
    complete caption with positions is the prompt of one generated image (the fake set).
    -> (results naming the extractor, n and seed; {"real": [...], "fake": [...]} 16 examples each)."""
    from dialect.eval.fid import fid_kid
    from dialect.world import captions, render
    from dialect.world.scene import sample_scene

    world = world or WorldConfig(size=model.image_size)
    decoder = model.resolve_decoder(decoder)  # None: the model's default, named in the results
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, world) for _ in range(n)]
    real = np.stack([render(s, world) for s in scenes])
    prompts = [captions(rng, s, world)[1] for s in scenes]
    fake = []
    for s in tqdm(range(0, n, batch_size), desc="fid samples", disable=not progress):
        fake.append(to_uint8(model.generate(prompts[s : s + batch_size], n=1, scale=scale, decoder=decoder,
                                            seed=seed + s, **sampling)))  # fmt: skip
    fake = np.concatenate(fake)
    res = fid_kid(network, real, fake, network_name, subset_size=min(1000, n))
    res.update(benchmark="fid", seed=seed, scale=scale, decoder=decoder)
    return res, {"real": list(real[:16]), "fake": list(fake[:16])}
