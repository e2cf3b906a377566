"""The Dialect pipeline and its CLI on micro models (untrained: these test the plumbing, the
shapes and the error messages; learning is tested in test_model)."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from detok.test_ar import _model as micro_ar
from detok.test_diffusion import _model as micro_diffusion
from dialect.cli.main import main
from dialect.core.errors import DialectError
from dialect.core.images import to_uint8
from dialect.data import user_image
from dialect.unified.pipeline import Dialect
from dialect.world import make_example

from .micro import WORLD, tar


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("dialect")
    m = tar()
    m.save_pretrained(root / "tar")
    ar = micro_ar()
    ar.condition.load_tatok(m.tatok)  # the de-tokenizer must read the LM's TA-Tok
    ar.save_pretrained(root / "ar")
    return root


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(make_example(0, 0, WORLD)["image"]).save(path)
    return path


def test_every_task_runs_and_has_the_right_shapes(folder, image_file):
    d = Dialect.from_pretrained(folder)
    assert d.image_size == 16 and set(d.decoders) == {"ar"}
    caps = d.caption([image_file, image_file])
    assert len(caps) == 2 and all(isinstance(c, str) for c in caps)
    assert len(d.ask(image_file, "what color is the circle?")) == 1
    imgs = d.generate(["a red ball", "two boxes"], n=2, scale=1, seed=0)
    assert imgs.shape == (4, 3, 16, 16) and imgs.min() >= -1 and imgs.max() <= 1
    again = d.generate(["a red ball", "two boxes"], n=2, scale=1, seed=0)
    assert torch.equal(imgs, again)  # seeded end to end
    arr = make_example(1, 0, WORLD)["image"]
    assert d.edit(arr, "make the circle blue", scale=2).shape == (1, 3, 16, 16)
    assert d.variation(torch.zeros(3, 16, 16)).shape == (1, 3, 16, 16)


def test_ask_returns_a_reasoned_replys_answer_and_explain_the_whole_reply(folder, image_file, monkeypatch):
    d = Dialect.from_pretrained(folder)
    reply = "small red circle left top ; small red circle left top ; answer : red"
    monkeypatch.setattr(d.tar, "generate_text", lambda convs, n: [reply] * len(convs))
    assert d.ask(image_file, "what color is the ball?") == ["red"]
    assert d.ask(image_file, "what color is the ball?", explain=True) == [reply]


def test_text_replies_do_not_depend_on_how_prompts_are_batched(folder):
    d = Dialect.from_pretrained(folder)
    images = [make_example(i, 3, WORLD)["image"] for i in range(4)]
    questions = [
        "what color is the ball?",
        "how many shapes are there?",
        "is there a box?",
        "caption this image.",
    ]
    spans = d.tar.image_spans(d._images(images))
    convs = [[("user", [span, q])] for span, q in zip(spans, questions * 1, strict=True)] * 2
    whole = d.tar.generate_text(convs, 6)
    assert d.tar.generate_text(convs, 6, max_batch=1) == whole and whole[:4] == whole[4:]


def test_bad_inputs_give_clear_errors(folder, image_file, tmp_path, monkeypatch):
    d = Dialect.from_pretrained(folder)
    with pytest.raises(DialectError, match="prompt is empty"):
        d.generate("   ")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(DialectError, match="not an image"):
        d.caption(text)
    with pytest.raises(DialectError, match="not found"):
        d.caption(tmp_path / "missing.png")
    with pytest.raises(DialectError, match="no 'diffusion' de-tokenizer"):
        d.generate("a ball", decoder="diffusion")
    with pytest.raises(DialectError, match="1..64 images"):
        d.generate("a ball", n=65)
    monkeypatch.setattr(user_image, "MAX_PIXELS", 100)
    with pytest.raises(DialectError, match="limited to 100 pixels"):
        d.caption(image_file)
    with pytest.raises(DialectError, match="not a Dialect model folder"):
        Dialect.from_pretrained(tmp_path)


def test_the_diffusion_decoder_is_the_default_when_shipped(folder, tmp_path):
    import shutil

    assert Dialect.from_pretrained(folder).default_decoder == "ar"  # the only one shipped
    shutil.copytree(folder, tmp_path / "m")
    dif = micro_diffusion()
    dif.condition.load_tatok(Dialect.from_pretrained(folder).tar.tatok)
    dif.save_pretrained(tmp_path / "m" / "diffusion")
    d = Dialect.from_pretrained(tmp_path / "m")
    assert d.default_decoder == "diffusion" and d.resolve_decoder("ar") == "ar"
    plain = d.generate("a red ball", n=2, scale=1, seed=0)
    assert torch.equal(plain, d.generate("a red ball", n=2, scale=1, seed=0, decoder="diffusion"))
    assert not torch.equal(plain, d.generate("a red ball", n=2, scale=1, seed=0, decoder="ar"))


def test_a_decoder_reading_another_tatok_is_refused(folder, tmp_path):
    import shutil

    shutil.copytree(folder, tmp_path / "m")
    micro_ar(seed=3).save_pretrained(tmp_path / "m" / "ar")  # its own random TA-Tok
    with pytest.raises(DialectError, match="different TA-Tok"):
        Dialect.from_pretrained(tmp_path / "m")


def test_cli_caption_generate_and_errors(folder, image_file, tmp_path, capsys):
    assert main(["caption", str(image_file), "--model", str(folder)]) == 0
    capsys.readouterr()  # an untrained model's caption may be anything, even empty
    out = tmp_path / "gen.png"
    assert (
        main(
            [
                "generate",
                "a red ball",
                "--n",
                "2",
                "--scale",
                "1",
                "--each",
                "-o",
                str(out),
                "--model",
                str(folder),
            ]
        )
        == 0
    )
    assert np.asarray(Image.open(out)).shape[0] == 16 + 4 and (tmp_path / "gen_1.png").is_file()
    assert "2 image(s)" in capsys.readouterr().out
    assert (
        main(["edit", str(image_file), "make it red", "-o", str(tmp_path / "e.png"), "--model", str(folder)])
        == 0
    )
    assert main(["generate", "", "-o", str(out), "--model", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dialect: error: the prompt is empty: give some text"]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n not really")
    assert main(["ask", str(bad), "what?", "--model", str(folder)]) == 2
    assert "not an image" in capsys.readouterr().err


def test_to_uint8_of_generated_images_is_valid(folder):
    d = Dialect.from_pretrained(folder)
    arr = to_uint8(d.generate("a cross", scale=2))
    assert arr.dtype == np.uint8 and arr.shape == (1, 16, 16, 3)


@pytest.mark.parametrize("bench", ["vqa", "caption", "geneval", "edit"])
def test_cli_eval_writes_results_table_and_grids(folder, tmp_path, bench, monkeypatch):
    import json

    from dialect.eval import generation, understanding

    small = WORLD  # the micro model reads 16x16 scenes
    for mod, fn in ((understanding, "vqa_mini"), (understanding, "caption_f1"), (generation, "geneval_mini"),
                    (generation, "edit_mini")):  # fmt: skip
        orig = getattr(mod, fn)
        monkeypatch.setattr(mod, fn, lambda *a, _o=orig, **k: _o(*a, world=small, progress=False, **k))
    out = tmp_path / bench
    n = "1" if bench == "geneval" else "3"
    assert main(["eval", bench, "--model", str(folder), "--n", n, "--out", str(out), "--scale", "2"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == str(folder) and "seed" in res
    table = (out / "results.md").read_text()
    assert "95% CI" in table and ("overall" in table or "attribute F1" in table)
    if bench in ("geneval", "edit"):
        assert (out / "fail.png").is_file() or (out / "pass.png").is_file()


def test_cli_eval_objects_keeps_scenes_of_exactly_k_objects(folder, tmp_path, monkeypatch, capsys):
    import json

    from dialect.eval import understanding

    seen = []
    orig = understanding.vqa_mini

    def spy(model, world=None, **kw):  # the micro model reads WORLD's 16x16 scenes
        seen.append(world)
        small = dataclasses.replace(WORLD, min_objects=world.min_objects, max_objects=world.max_objects)
        return orig(model, world=small, progress=False, **kw)

    monkeypatch.setattr(understanding, "vqa_mini", spy)
    out = tmp_path / "vqa2"
    assert main(["eval", "vqa", "--model", str(folder), "--n", "2", "--objects", "2", "--out", str(out)]) == 0
    assert (seen[0].min_objects, seen[0].max_objects) == (2, 2)
    assert all(len(make_example(i, 5, seen[0])["scene"].objects) == 2 for i in range(20))
    assert json.loads((out / "results.json").read_text())["objects"] == 2
    capsys.readouterr()
    assert main(["eval", "vqa", "--model", str(folder), "--objects", "9", "--out", str(out)]) == 2
    assert "--objects must be in 1..4, got 9" in capsys.readouterr().err
    assert main(["eval", "edit", "--model", str(folder), "--objects", "2", "--out", str(out)]) == 2
    assert "vqa and caption only" in capsys.readouterr().err


@pytest.mark.parametrize("image_last", [False, True])
def test_edit_builds_its_prompt_in_the_order_the_lm_was_trained_on(folder, image_last, monkeypatch):
    """`TarConfig.image_last` decides [image, instruction] vs [instruction, image] in `edit`, as in
    training (`unified.tasks.conversation`)."""
    from dialect.unified.template import ImageSpan

    d = Dialect.from_pretrained(folder)
    monkeypatch.setattr(d.tar.config, "image_last", image_last)
    seen = []

    def capture(convs, scale, sampling, gen, null="text"):
        seen.extend(convs)
        return torch.zeros(len(convs), d.tar.tatok.num_tokens(scale), dtype=torch.long)

    monkeypatch.setattr(d.tar, "generate_codes", capture)
    d.edit(make_example(1, 0, WORLD)["image"], "make the circle blue", scale=2)
    ((role, content),) = seen[0]
    kinds = [type(part) for part in content]
    assert role == "user" and kinds == ([str, ImageSpan] if image_last else [ImageSpan, str])


@pytest.mark.parametrize("question_first", [False, True])
def test_ask_builds_its_prompt_in_the_order_the_lm_was_trained_on(folder, question_first, monkeypatch):
    """`TarConfig.question_first` decides [image, question] vs [question, image] in `ask` (and so
    in `caption` and a chat's first turn), as in training (`unified.tasks.conversation`)."""
    from dialect.unified.chat import chat
    from dialect.unified.template import ImageSpan

    d = Dialect.from_pretrained(folder)
    monkeypatch.setattr(d.tar.config, "question_first", question_first)
    seen = []
    monkeypatch.setattr(d.tar, "generate_text", lambda convs, n: seen.extend(convs) or ["red"] * len(convs))
    image = make_example(1, 0, WORLD)["image"]
    assert d.ask(image, "what color is the circle?") == ["red"]
    assert chat(d, image, [], "what color is the circle?") == "red"
    want = [str, ImageSpan] if question_first else [ImageSpan, str]
    for conv in seen:
        ((role, content),) = conv
        assert role == "user" and [type(part) for part in content] == want


def test_ahead_of_time_decoding_gives_the_same_captions_and_codes(folder):
    """`Dialect.compile_decoding(ahead_of_time=True)`: Tar's and AR-DTok's steps run the libraries
    AOTInductor built (AR-DTok's with its per-token condition), with the eager tokens."""
    d = Dialect.from_pretrained(folder)
    images = torch.zeros(2, 3, 16, 16)
    eager = d.caption(images), d.generate(["a red ball"], n=2, scale=1, seed=0, decoder="ar")
    d.compile_decoding(ahead_of_time=True)
    built = d.caption(images), d.generate(["a red ball"], n=2, scale=1, seed=0, decoder="ar")
    assert built[0] == eager[0] and torch.equal(built[1], eager[1])
    for lm in (d.tar.lm, d.decoders["ar"].lm):
        assert lm._aot.failed is None and lm._aot._libraries  # the steps ran the built libraries
    d.compile_decoding(False)
    assert d.tar.lm._aot is None and d.decoders["ar"].lm._aot is None


def test_compiled_decoding_gives_the_same_captions_codes_and_scores(folder, tmp_path, monkeypatch):
    """`Dialect.compile_decoding` (and `dialect eval --compile`) compiles Tar's and AR-DTok's decoding
    steps; captions, codes and images, and a benchmark's results, equal the eager ones."""
    import json

    from dialect.eval import understanding

    torch._dynamo.reset()
    d = Dialect.from_pretrained(folder)
    images = torch.zeros(2, 3, 16, 16)
    eager = d.caption(images), d.generate(["a red ball"], n=2, scale=1, seed=0, decoder="ar")
    d.compile_decoding()
    assert d.tar.lm._step is not None and d.decoders["ar"].lm._step is not None
    compiled = d.caption(images), d.generate(["a red ball"], n=2, scale=1, seed=0, decoder="ar")
    assert compiled[0] == eager[0] and torch.equal(compiled[1], eager[1])
    d.compile_decoding(False)
    assert d.tar.lm._step is None and d.decoders["ar"].lm._step is None

    orig = understanding.caption_f1
    small = lambda *a, **k: orig(*a, world=WORLD, progress=False, **k)  # noqa: E731
    monkeypatch.setattr(understanding, "caption_f1", small)
    scores = {}
    for flag in ([], ["--compile"]):
        out = tmp_path / f"caption{len(flag)}"
        assert main(["eval", "caption", "--model", str(folder), "--n", "3", "--out", str(out), *flag]) == 0
        scores[len(flag)] = json.loads((out / "results.json").read_text())["f1"]
    assert scores[0] == scores[1]
    torch._dynamo.reset()
