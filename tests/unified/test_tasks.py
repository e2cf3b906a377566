"""Tar's training samples: ShapeWorld task mix and the user's JSONL records."""

import json

import numpy as np
import pytest
from PIL import Image

from dialect.core.errors import DialectError
from dialect.data.sample import Skipped, collate
from dialect.data.transforms import ImageTransform
from dialect.unified import JsonlTasks, ShapeWorldTasks, TaskConfig
from dialect.unified.tasks import REQUESTS, final_answer, reasoned
from dialect.world import make_example, scene_description, scene_equal
from dialect.world.scene import Scene

from .micro import WORLD, tar


def test_shapeworld_mix_follows_the_weights_and_is_deterministic():
    mix = TaskConfig(weights={"vqa": 1.0, "t2i": 3.0}, scale_weights=[1, 0, 1])
    ds = ShapeWorldTasks(mix, WORLD, 3, seed=2)
    tasks = [ds[i]["meta"]["task"] for i in range(400)]
    assert set(tasks) == {"vqa", "t2i"} and 0.65 < tasks.count("t2i") / 400 < 0.85
    scales = {ds[i]["meta"]["scale"] for i in range(400) if ds[i]["meta"]["task"] == "t2i"}
    assert scales == {0, 2}
    assert ds[7]["meta"] == ds[7]["meta"]  # same index, same sample


def test_variations_keep_the_scene_and_edits_change_it():
    ds = ShapeWorldTasks(TaskConfig(weights={"i2i": 1.0}, variation=1.0), WORLD, 3, seed=4)
    for i in range(10):
        s = ds[i]
        assert s["meta"]["task"] == "i2i" and s["meta"]["answer"] == ""
    ed = ShapeWorldTasks(TaskConfig(weights={"ti2i": 1.0}), WORLD, 3, seed=4)
    s = ed[0]
    assert not scene_equal(Scene.from_dict(s["meta"]["scene"]), Scene.from_dict(s["meta"]["target_scene"]))


def test_vqa_samples_ask_several_distinct_questions_and_train_on_every_answer():
    m = tar()
    ds = ShapeWorldTasks(TaskConfig(weights={"vqa": 1.0}, vqa_turns=3), WORLD, 3, seed=6)
    for i in range(5):
        meta = ds[i]["meta"]
        asked = [(meta["user"], meta["answer"]), *map(tuple, meta["turns"])]
        qa = {(q["question"], q["answer"]) for q in make_example(i, 6, WORLD, "train")["qa"]}
        assert len(asked) == min(3, len(qa)) and len(set(asked)) == len(asked) and set(asked) <= qa
    ids, mask = m.batch_sequences(collate([ds[0]]))
    answers = [ds[0]["meta"]["answer"]] + [a for _, a in ds[0]["meta"]["turns"]]
    assert mask.sum() == sum(len(m.vocab.encode_text(a)) + 1 for a in answers)  # each answer + <|end|>
    single = ShapeWorldTasks(TaskConfig(weights={"vqa": 1.0}), WORLD, 3, seed=6)[0]  # the default: one
    assert single["meta"]["turns"] == [] and m.batch_sequences(collate([single]))[1].sum() == 2


def test_vqa_describe_opens_with_a_complete_caption_then_asks_every_question():
    cfg = TaskConfig(weights={"vqa": 1.0}, vqa_turns=3, vqa_describe=1.0)
    ds = ShapeWorldTasks(cfg, WORLD, 3, seed=6)
    plain = ShapeWorldTasks(TaskConfig(weights={"vqa": 1.0}, vqa_turns=3), WORLD, 3, seed=6)
    for i in range(5):
        meta, ex = ds[i]["meta"], make_example(i, 6, WORLD, "train")
        assert meta["user"] in REQUESTS["caption"] and meta["answer"] in ex["captions"][:2]
        qa = {(q["question"], q["answer"]) for q in ex["qa"]}
        assert len(meta["turns"]) == min(3, len(qa)) and {tuple(t) for t in meta["turns"]} <= qa
        p = plain[i]["meta"]  # the same questions as without the caption turn
        assert [tuple(t) for t in meta["turns"]] == [(p["user"], p["answer"]), *map(tuple, p["turns"])]
    half = ShapeWorldTasks(TaskConfig(weights={"vqa": 1.0}, vqa_describe=0.5), WORLD, 3, seed=6)
    opened = sum(half[i]["meta"]["user"] in REQUESTS["caption"] for i in range(200))
    assert 70 < opened < 130
    with pytest.raises(DialectError, match="vqa_describe"):
        ShapeWorldTasks(TaskConfig(vqa_describe=1.5), WORLD, 3)


def test_vqa_reason_describes_the_scene_and_the_asked_objects_before_the_first_answer():
    m = tar()
    cfg = TaskConfig(weights={"vqa": 1.0}, vqa_turns=3, vqa_reason=True)
    ds, plain = (
        ShapeWorldTasks(cfg, WORLD, 3, seed=6),
        ShapeWorldTasks(TaskConfig(**{**vars(cfg), "vqa_reason": False}), WORLD, 3, seed=6),
    )
    for i in range(8):
        meta, p = ds[i]["meta"], plain[i]["meta"]
        scene = Scene.from_dict(meta["scene"])
        description, about, answer = meta["answer"].split("; ")
        assert description == scene_description(scene) and answer == f"answer: {p['answer']}"
        qa = next(q for q in make_example(i, 6, WORLD, "train")["qa"] if q["question"] == meta["user"])
        assert about == scene_description(scene, [scene.objects[k] for k in qa["refs"]])
        assert meta["answer"] == reasoned(scene, qa) and meta["turns"] == p["turns"]  # later turns plain
        # the answer survives the tokenizer's round trip ("answer :" once decoded)
        decoded = m.vocab.decode_text(m.vocab.encode_text(meta["answer"]))
        assert final_answer(decoded) == p["answer"] != decoded
    assert final_answer("red") == "red"  # a plain reply is its own answer


def test_tqa_asks_about_the_scene_in_words_with_no_image_in_the_sequence():
    m = tar()
    ds = ShapeWorldTasks(TaskConfig(weights={"tqa": 1.0}, vqa_turns=2), WORLD, 3, seed=6)
    meta = ds[0]["meta"]
    scene = Scene.from_dict(meta["scene"])
    description, question = meta["user"].split("; ")
    qa = {(q["question"], q["answer"]) for q in make_example(0, 6, WORLD, "train")["qa"]}
    assert description == scene_description(scene) and (question, meta["answer"]) in qa
    ids, mask = m.batch_sequences(collate([ds[0]]))
    assert not (ids >= m.vocab.image_offset).any()  # no image token anywhere
    answers = [meta["answer"]] + [a for _, a in meta["turns"]]
    assert mask.sum() == sum(len(m.vocab.encode_text(a)) + 1 for a in answers)


def test_bad_task_configs_are_clear_errors():
    with pytest.raises(DialectError, match="vqa_turns"):
        ShapeWorldTasks(TaskConfig(vqa_turns=0), WORLD, 3)
    with pytest.raises(DialectError, match="unknown Tar task"):
        ShapeWorldTasks(TaskConfig(weights={"painting": 1.0}), WORLD, 3)
    with pytest.raises(DialectError, match="scale_weights"):
        ShapeWorldTasks(TaskConfig(scale_weights=[1, 1, 1, 1]), WORLD, 3)


def test_jsonl_records_become_tasks_and_train(tmp_path):
    for i in range(3):
        Image.fromarray(make_example(i, 0, WORLD)["image"]).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_text("nope")
    rows = [
        {"image": "0.png", "text": "a small red ball"},
        {"image": "1.png", "question": "what color is the box?", "answer": "blue"},
        {"image": "2.png", "instruction": "make the ball green", "target": "0.png"},
        {"image": "bad.png", "text": "unreadable"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ds = JsonlTasks(path, TaskConfig(), 3, ImageTransform(size=16))
    samples = [ds[i] for i in range(4)]
    assert samples[0]["meta"]["task"] in ("caption", "t2i")
    assert samples[1]["meta"]["task"] == "vqa" and samples[1]["meta"]["answer"] == "blue"
    assert samples[2]["meta"]["task"] == "ti2i" and samples[2]["target"].shape == (3, 16, 16)
    assert isinstance(samples[3], Skipped)
    batch = collate(samples)
    assert len(batch["meta"]) == 3 and batch["skipped"]
    loss = tar().training_losses(batch)["loss"]
    assert np.isfinite(loss.item())
