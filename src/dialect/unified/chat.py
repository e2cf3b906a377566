"""Multi-turn chat about one image with a `Dialect` pipeline.

    reply = chat(d, image, history=[("describe the image.", "a red circle ...")], message="what color ...")

The conversation handed to the LM is the chat template's own multi-turn form: the image goes
with the first user turn, earlier answers are assistant turns, the new message is the last user
turn. With no history this is exactly `Dialect.ask(image, message, explain=True)`: a chat shows a
reasoned reply whole (`model.tasks.vqa_reason`). The LM has a fixed context
(`lm.max_len`), so the oldest exchanges are dropped until the prompt leaves room for the reply;
the image and the new message are always kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dialect.core.errors import DialectError
from dialect.unified.pipeline import Dialect, _check_text
from dialect.unified.tasks import image_prompt
from dialect.unified.template import ImageSpan, Turn, encode_conversation

Exchange = tuple[str, str]  # (user message, assistant reply)


def chat_turns(
    span: ImageSpan, history: Sequence[Exchange], message: str, question_first: bool = False
) -> list[Turn]:
    """[user: image + q1, assistant: a1, user: q2, ..., user: message]; the image opens the chat
    (after q1 with `question_first`, `TarConfig.question_first`)."""
    turns: list[Turn] = []
    for user, assistant in history:
        turns += [("user", [user]), ("assistant", [assistant])]
    turns.append(("user", [message]))
    role, (first,) = turns[0]
    turns[0] = (role, image_prompt(span, first, question_first))
    return turns


def fit_history(
    d: Dialect, span: ImageSpan, history: Sequence[Exchange], message: str, max_new_tokens: int
) -> list[Exchange]:
    """The most recent exchanges whose prompt leaves `max_new_tokens` of room in the LM's context."""
    kept, first = list(history), d.tar.config.question_first
    limit = d.tar.config.lm.max_len
    while kept:
        turns = chat_turns(span, kept, message, first)
        ids, _ = encode_conversation(d.tar.vocab, turns, add_generation_prompt=True)
        if len(ids) + max_new_tokens <= limit:
            break
        kept.pop(0)
    return kept


@torch.no_grad()
def chat(
    d: Dialect, image: Any, history: Sequence[Exchange], message: str, max_new_tokens: int | None = None
) -> str:
    """The assistant's reply to `message` about `image` after the earlier `history` exchanges
    (greedy, like `ask`; `max_new_tokens` None = `d.reply_tokens`). Bad images or text raise
    DialectError like the pipeline's own methods."""
    max_new_tokens = max_new_tokens or d.reply_tokens
    x = d._images(image)
    if len(x) != 1:
        raise DialectError(f"a chat is about one image, got {len(x)}")
    message = _check_text(message, "message")
    history = [(_check_text(u, "earlier message"), str(a)) for u, a in history]
    span = d.tar.image_spans(x)[0]
    kept = fit_history(d, span, history, message, max_new_tokens)
    turns = chat_turns(span, kept, message, d.tar.config.question_first)
    return d.tar.generate_text([turns], max_new_tokens)[0]
