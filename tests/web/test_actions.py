"""The demo's panels without a browser (`dialect.web.actions`) on the shipped model: what each
returns, that it matches the pipeline, and that bad input gives the pipeline's clear message."""

import numpy as np
import pytest
import torch
from PIL import Image

from dialect.core.errors import DialectError
from dialect.data import user_image
from dialect.data.user_image import load_image_tensor
from dialect.web.actions import CAPTION_REQUEST, PREVIEW, SHAPEWORLD_SEED, DemoActions, Sampling, show
from dialect.world import WorldConfig, make_example


@pytest.fixture(scope="module")
def actions(shipped):
    return DemoActions(shipped)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("web") / "scene.png"
    Image.fromarray(make_example(3, 11, WorldConfig())["image"]).save(path)
    return path


def test_uploads_are_read_like_the_pipeline_reads_them(actions, scene_file):
    img = actions.load_upload(str(scene_file))
    assert torch.equal(img.tensor, load_image_tensor(scene_file, 64))
    assert img.preview.shape == (PREVIEW, PREVIEW, 3) and "scene.png" in img.note


def test_bad_uploads_name_the_users_file_not_the_servers_copy(actions, scene_file, tmp_path, monkeypatch):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(DialectError) as err:
        actions.load_upload(str(text))
    assert str(err.value) == "cannot use notes.txt: not an image file"
    monkeypatch.setattr(user_image, "MAX_PIXELS", 100)
    with pytest.raises(DialectError, match=r"^scene.png is 64x64: images are limited to 100 pixels$"):
        actions.load_upload(str(scene_file))
    with pytest.raises(DialectError, match="no image uploaded"):
        actions.load_upload(None)


def test_shapeworld_scenes_come_with_their_reference_caption(actions):
    ex = make_example(5, SHAPEWORLD_SEED, WorldConfig(), with_edits=False)
    img = actions.shapeworld(5.0)  # a Gradio number arrives as a float
    assert torch.equal(img.tensor, load_image_tensor(ex["image"], 64))
    assert ex["captions"][0] in img.note
    with pytest.raises(DialectError, match="whole number"):
        actions.shapeworld(2.5)
    with pytest.raises(DialectError, match=">= 0"):
        actions.shapeworld(-1)


def test_chat_replies_are_the_pipelines(actions, shipped, scene_file):
    img = actions.load_upload(str(scene_file))
    caption = actions.reply(img, [], CAPTION_REQUEST)
    assert caption == shipped.caption(scene_file)[0]
    # without use_history the earlier turns do not reach the model; with it they may change the answer
    q = "what color is the square?"
    assert actions.reply(img, [(CAPTION_REQUEST, caption)], q) == shipped.ask(scene_file, q)[0]
    assert isinstance(actions.reply(img, [(CAPTION_REQUEST, caption)], q, use_history=True), str)
    with pytest.raises(DialectError, match="no image yet"):
        actions.reply(None, [], q)
    with pytest.raises(DialectError, match="limit is 1000"):
        actions.reply(img, [], "why? " * 300)


def test_generate_matches_the_pipeline_and_reports_tokens_and_time(actions, shipped):
    steps = []
    gallery, summary = actions.generate(
        "a red circle", 2.0, Sampling(scale=2, seed=3), lambda f, d: steps.append(f)
    )
    expected = shipped.generate("a red circle", n=2, scale=2, seed=3)
    assert [label for _, label in gallery] == ["#1: 4 tokens (2x2)", "#2: 4 tokens (2x2)"]
    for (img, _), ref in zip(gallery, expected, strict=True):
        assert np.array_equal(img, show(ref))
    assert summary.startswith("2 image(s), 4 TA-Tok tokens each (scale 2, 2x2), in ") and "LM" in summary
    assert steps == [0.0, 0.5, 1.0]


def test_generate_limits_give_clear_messages(actions):
    with pytest.raises(DialectError, match=r"1\.\.64 images"):
        actions.generate("a red circle", 65, Sampling())
    with pytest.raises(DialectError, match="prompt has 1001 characters; the limit is 1000"):
        actions.generate("a" * 1001, 1, Sampling())
    with pytest.raises(DialectError, match="prompt is empty"):
        actions.generate(" ", 1, Sampling())
    with pytest.raises(DialectError, match="whole number"):
        actions.generate("a red circle", 1.5, Sampling())
    with pytest.raises(DialectError, match="number of images"):
        actions.generate("a red circle", None, Sampling())
    with pytest.raises(DialectError, match="no 'pixels' de-tokenizer; it ships ar, diffusion"):
        actions.generate("a red circle", 1, Sampling(decoder="pixels"))
    with pytest.raises(DialectError, match="top_p"):
        actions.generate("a red circle", 1, Sampling(top_p=1.5))
    with pytest.raises(DialectError, match="scale must be in"):
        actions.generate("a red circle", 1, Sampling(scale=7))
    with pytest.raises(DialectError, match="cfg_scale must be a finite number"):
        actions.generate("a red circle", 1, Sampling(lm_guidance=float("inf")))


def test_lm_guidance_reaches_the_pipeline(actions, shipped, scene_file):
    """The shipped LM was trained with prompt dropout (guidance on generation) but not with
    input-image dropout (none on edits): the panel passes the value and the model's rule decides."""
    gallery, _ = actions.generate("a red circle", 1, Sampling(scale=2, seed=3, lm_guidance=3.0))
    expected = shipped.generate("a red circle", n=1, scale=2, seed=3, cfg_scale=3.0)
    assert np.array_equal(gallery[0][0], show(expected[0]))
    img = actions.load_upload(str(scene_file))
    with pytest.raises(DialectError, match="input-image dropout"):
        actions.edit(img, "make the square blue", Sampling(scale=1, lm_guidance=3.0))


def test_edit_and_dialect_view(actions, shipped, scene_file):
    img = actions.load_upload(str(scene_file))
    edited, summary = actions.edit(img, "make the square blue", Sampling(scale=1, seed=0))
    assert edited.shape == (PREVIEW, PREVIEW, 3) and "16 TA-Tok tokens (4x4)" in summary
    with pytest.raises(DialectError, match="instruction is empty"):
        actions.edit(img, "", Sampling())
    overlay, recons, words, summary = actions.dialect_view(img, 1.0)
    assert overlay.shape == (512, 512, 3)
    labels = ["input", "ar de-tokenizer, from 16 tokens", "diffusion de-tokenizer, from 16 tokens"]
    assert [label for _, label in recons] == labels  # every shipped de-tokenizer
    ids = shipped.tar.tatok.encode_ids(img.tensor, 1)
    assert np.array_equal(recons[1][0], show(shipped.decode(ids, 1, "ar", 0)[0]))
    assert np.array_equal(recons[2][0], show(shipped.decode(ids, 1, "diffusion", 0)[0]))
    token_line, rows = words.split("\n\n")
    assert token_line.startswith("<S1><I") and len(rows.splitlines()) == 4
    assert rows.split() == shipped.tar.tatok.codebook_words(ids[0])
    assert "16 tokens (4x4)" in summary and "ships no" not in summary
    with pytest.raises(DialectError, match="no image yet"):
        actions.dialect_view(None, 0)


def test_the_header_shows_the_model_cards_scores(actions, shipped, tmp_path):
    shipped_line = (
        "Model: the shipped default model (`dialect/models/default`), 64x64 images; TA-Tok scale 0:"
    )
    assert actions.describe().startswith(shipped_line)
    line = actions.scores()
    assert line.startswith("Its scores (model card, `metrics.json`): VQA-mini 0.") and "Edit-mini" in line
    elsewhere = DemoActions(type(shipped)(shipped.tar, shipped.decoders, str(tmp_path)))
    assert elsewhere.scores() == "" and elsewhere.describe().startswith(f"Model: `{tmp_path}`, 64x64")
