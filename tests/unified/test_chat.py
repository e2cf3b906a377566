"""Multi-turn chat (`dialect.unified.chat`) on a micro Tar: the turns it builds, the history it
keeps within the LM's context, and that a first turn is exactly `ask`."""

import pytest

from dialect.core.errors import DialectError
from dialect.unified.chat import chat, chat_turns, fit_history
from dialect.unified.pipeline import Dialect
from dialect.unified.template import ImageSpan, encode_conversation
from dialect.world import make_example

from .micro import WORLD, tar


@pytest.fixture(scope="module")
def d():
    return Dialect(tar(), {})  # chat needs no de-tokenizer


@pytest.fixture(scope="module")
def image():
    return make_example(0, 0, WORLD)["image"]


def test_turns_put_the_image_first_and_earlier_answers_as_assistant_turns(d, image):
    span = d.tar.image_spans(d._images(image))[0]
    turns = chat_turns(span, [("what is it?", "a ball"), ("what color?", "red")], "how many?")
    assert [role for role, _ in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert isinstance(turns[0][1][0], ImageSpan) and turns[0][1][1] == "what is it?"
    assert turns[1][1] == ["a ball"] and turns[-1][1] == ["how many?"]
    assert chat_turns(span, [], "hi?") == [("user", [span, "hi?"])]  # what `ask` sends
    first = chat_turns(span, [("what is it?", "a ball")], "how many?", question_first=True)
    assert first[0] == ("user", ["what is it?", span]) and first[2] == ("user", ["how many?"])


def test_first_turn_is_ask_and_history_reaches_the_model(d, image, monkeypatch):
    assert chat(d, image, [], "what color is the circle?") == d.ask(image, "what color is the circle?")[0]
    seen = []
    monkeypatch.setattr(d.tar, "generate_text", lambda convs, n: seen.append(convs) or ["ok"])
    assert chat(d, image, [("caption this image.", "a red ball")], "what color?") == "ok"
    roles = [role for role, _ in seen[0][0]]
    assert roles == ["user", "assistant", "user"] and seen[0][0][1][1] == ["a red ball"]


def test_oldest_exchanges_are_dropped_to_fit_the_context(d, image):
    span = d.tar.image_spans(d._images(image))[0]
    history = [(f"question number {i} about the picture?", f"answer {i}") for i in range(12)]
    kept = fit_history(d, span, history, "and now?", max_new_tokens=16)
    assert 0 < len(kept) < len(history) and kept == history[-len(kept) :]  # the most recent ones
    ids, _ = encode_conversation(d.tar.vocab, chat_turns(span, kept, "and now?"), add_generation_prompt=True)
    assert len(ids) + 16 <= d.tar.config.lm.max_len
    assert isinstance(chat(d, image, history, "and now?", max_new_tokens=16), str)
    assert fit_history(d, span, history[:1], "and now?", 16) == history[:1]


def test_bad_chat_inputs_give_clear_errors(d, image):
    with pytest.raises(DialectError, match="message is empty"):
        chat(d, image, [], "  ")
    with pytest.raises(DialectError, match="one image"):
        chat(d, [image, image], [], "what?")
    with pytest.raises(DialectError, match="earlier message is empty"):
        chat(d, image, [("", "x")], "what?")
