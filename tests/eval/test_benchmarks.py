"""ShapeWorld benchmarks against oracle and trivial models: an oracle scores 1, a trivial model
does not, so the graders and the bookkeeping can fail."""

import numpy as np
import pytest
import torch

from dialect.core.errors import DialectError
from dialect.core.images import to_tensor
from dialect.eval.generation import edit_mini, geneval_mini
from dialect.eval.stats import bootstrap_mean, wilson
from dialect.eval.understanding import attribute_f1, caption_f1, vqa_mini
from dialect.world import WorldConfig, make_example, render

WORLD = WorldConfig()


def test_wilson_and_bootstrap_intervals():
    lo, hi = wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)  # the textbook value
    assert wilson(0, 0) == (0.0, 1.0) and wilson(10, 10)[1] == 1.0
    lo, hi = bootstrap_mean([1.0] * 50 + [0.0] * 50)
    assert lo < 0.5 < hi and hi - lo < 0.3


def test_attribute_f1():
    ex = make_example(3, 0, WORLD)
    assert attribute_f1(ex["captions"][0], ex["scene"]) == 1.0
    o = ex["scene"].objects[0]
    wrong = ex["captions"][0].replace(o.color, "cyan" if o.color != "cyan" else "red")
    assert attribute_f1(wrong, ex["scene"]) < 1.0
    assert attribute_f1("", ex["scene"]) == 0.0


class Stub:
    """What the benchmarks ask of a model besides its answers: image size, de-tokenizer names."""

    image_size = 64

    def resolve_decoder(self, decoder):
        return decoder or "ar"


class Oracle(Stub):
    """Answers from the ground truth it is built with (keyed by image bytes and text)."""

    def __init__(self, seed, split, n, edits=False):
        self.qa, self.caps, self.edits = {}, {}, {}
        for i in range(n):
            ex = make_example(i, seed, WORLD, split, with_edits=edits)
            key = ex["image"].tobytes()
            self.caps[key] = ex["captions"][0]
            for qa in ex["qa"]:
                self.qa[key, qa["question"]] = qa["answer"]
            for e in ex.get("edits", []):
                self.edits[key, e["instruction"]] = render(e["target"], WORLD)

    def ask(self, images, questions):
        return [self.qa[np.asarray(im).tobytes(), q] for im, q in zip(images, questions, strict=True)]

    def caption(self, images):
        return [self.caps[np.asarray(im).tobytes()] for im in images]

    def edit(self, images, instructions, **kw):
        return torch.stack(
            [
                to_tensor(self.edits[np.asarray(im).tobytes(), t])
                for im, t in zip(images, instructions, strict=True)
            ]
        )


class Blank(Stub):
    def ask(self, images, questions):
        return ["red"] * len(images)

    def generate(self, prompt, n=1, **kw):
        return torch.ones(n, 3, 64, 64)

    def edit(self, images, instructions, **kw):
        return torch.stack([to_tensor(np.asarray(im)) for im in images])  # unchanged: never the target


def test_vqa_and_captions_oracle_scores_one_and_a_trivial_model_does_not():
    res = vqa_mini(Oracle(7, "train", 20), n=20, seed=7, progress=False)
    assert res["overall"]["value"] == 1.0 and set(res["by_type"]) >= {"color", "count"}
    assert caption_f1(Oracle(7, "train", 20), n=20, seed=7, progress=False)["f1"]["value"] == 1.0
    trivial = vqa_mini(Blank(), n=20, seed=7, progress=False)
    assert trivial["overall"]["value"] < 0.3 and trivial["by_type"]["shape"]["value"] == 0.0


def test_edit_mini_oracle_passes_and_an_unchanged_image_fails():
    res, ex = edit_mini(Oracle(11, "train", 12, edits=True), n=12, seed=11, progress=False)
    assert res["overall"]["value"] == 1.0 and len(ex["pass"]) > 0
    res, _ = edit_mini(Blank(), n=12, seed=11, progress=False)
    assert res["overall"]["value"] == 0.0


def test_geneval_mini_blank_images_fail_every_prompt():
    res, ex = geneval_mini(Blank(), n_per_category=2, images_per_prompt=2, progress=False)
    assert res["overall"] == 0.0 and len(res["by_category"]) == 6
    assert res["all_images"]["n"] == 24 and len(ex["fail"]) == 16 and not ex["pass"]  # 16 kept


class Lossless(Stub):
    """A tokenizer and de-tokenizer that give every image back unchanged, and no LM at all."""

    def reconstruct(self, images, scale=0, decoder=None, seed=0, **kw):
        return torch.stack([to_tensor(np.asarray(im)) for im in images])


class Erasing(Lossless):
    def reconstruct(self, images, scale=0, decoder=None, seed=0, **kw):
        return torch.ones(len(images), 3, 64, 64)


def test_oracle_runs_score_the_drawing_chain_alone():
    """A lossless chain passes every prompt and edit from the ideal scenes, one that erases passes
    none, and LM sampling settings are refused since an oracle run samples no LM tokens."""
    res, ex = geneval_mini(Lossless(), n_per_category=3, images_per_prompt=2, oracle=True, progress=False)
    assert res["overall"] == 1.0 and res["oracle"] and len(res["by_category"]) == 6 and not ex["fail"]
    res, _ = geneval_mini(Erasing(), n_per_category=3, images_per_prompt=2, oracle=True, progress=False)
    assert res["overall"] == 0.0
    res, _ = edit_mini(Lossless(), n=12, seed=11, oracle=True, progress=False)
    assert res["overall"]["value"] == 1.0 and res["oracle"]
    res, _ = edit_mini(Erasing(), n=12, seed=11, oracle=True, progress=False)
    assert res["overall"]["value"] == 0.0
    with pytest.raises(DialectError, match="temperature"):
        geneval_mini(Lossless(), n_per_category=1, oracle=True, temperature=0.5, progress=False)
    with pytest.raises(DialectError, match="cfg_scale"):
        edit_mini(Lossless(), n=2, oracle=True, cfg_scale=2.0, progress=False)
