"""Tar's chat template: conversations -> token ids and the loss mask.

A conversation is a list of turns `(role, segments)`, role in system / user / assistant, each
segment a string or an :class:`ImageSpan`. Rendered as

    <|role|> segment ids ... <|end|>      for every turn, in order

where a string is MiniLM WordPiece ids and an image is `<im_start> <S_k> <I..> x N <im_end>`
(N = the TA-Tok token count of scale k). As in the paper the loss covers only the assistant turns:
their segments and their closing `<|end|>`, never the role marker or anything the user wrote.
`add_generation_prompt=True` ends with `<|assistant|>`, where generation starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dialect.core.errors import DialectError
from dialect.unified.vocab import END, IM_END, IM_START, ROLES, TarVocab, role_token


@dataclass(frozen=True)
class ImageSpan:
    """TA-Tok codes (N,) long in [0, K) of one image at `scale`."""

    codes: torch.Tensor
    scale: int


@dataclass(frozen=True)
class Null:
    """The null condition of classifier-free guidance in place of a user segment, at its length,
    so a conditional sequence and its unconditional twin decode side by side as one batch with one
    KV cache: a text becomes one `[PAD]` per word piece; an image keeps its `<im_start> <S_k> ...
    <im_end>` frame with `[PAD]` in place of each code."""

    of: str | ImageSpan


Segment = str | ImageSpan | Null
Turn = tuple[str, Sequence[Segment]]


def image_tokens(vocab: TarVocab, span: ImageSpan) -> list[int]:
    """`<im_start> <S_k> <I..> ... <im_end>` for one image."""
    codes = span.codes.reshape(-1)
    return [
        vocab.special(IM_START),
        vocab.scale_id(span.scale),
        *vocab.image_ids(codes).tolist(),
        vocab.special(IM_END),
    ]


def segment_ids(vocab: TarVocab, seg: Segment) -> list[int]:
    if isinstance(seg, ImageSpan):
        return image_tokens(vocab, seg)
    if isinstance(seg, Null):
        if isinstance(seg.of, ImageSpan):
            ids = image_tokens(vocab, seg.of)
            return [*ids[:2], *[vocab.pad_id] * (len(ids) - 3), ids[-1]]
        return [vocab.pad_id] * len(vocab.encode_text(seg.of))
    if not isinstance(seg, str):
        raise DialectError(f"a conversation segment is a string or an ImageSpan, got {type(seg).__name__}")
    return vocab.encode_text(seg)


NULLABLE = {"text": str, "image": ImageSpan}


def null_conversation(turns: Sequence[Turn], kind: str = "text") -> list[Turn]:
    """The unconditional twin of a conversation for classifier-free guidance: every `kind` segment
    ("text": the strings, "image": the images) of the user's turns becomes `Null`; everything
    else, roles and assistant turns included, stays (same length)."""
    if kind not in NULLABLE:
        raise DialectError(f"null kind must be one of {', '.join(NULLABLE)}, got {kind!r}")
    nulled = NULLABLE[kind]
    return [
        (role, [Null(s) if role == "user" and isinstance(s, nulled) else s for s in segments])
        for role, segments in turns
    ]


def encode_conversation(
    vocab: TarVocab, turns: Sequence[Turn], add_generation_prompt: bool = False
) -> tuple[list[int], list[int]]:
    """-> (ids, loss_mask): 1 exactly on the assistant turns' content and closing <|end|>."""
    ids: list[int] = []
    mask: list[int] = []
    for role, segments in turns:
        if role not in ROLES:
            raise DialectError(f"unknown chat role {role!r}; use one of {', '.join(ROLES)}")
        body = [i for seg in segments for i in segment_ids(vocab, seg)] + [vocab.special(END)]
        target = int(role == "assistant")
        ids += [vocab.special(role_token(role)), *body]
        mask += [0] + [target] * len(body)
    if add_generation_prompt:
        ids.append(vocab.special(role_token("assistant")))
        mask.append(0)
    return ids, mask


def pad_batch(
    sequences: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: -> ids (B, T) long, loss_mask (B, T) float (0 on padding)."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), length)
    for b, (s, m) in enumerate(zip(sequences, masks, strict=True)):
        ids[b, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[b, : len(m)] = torch.tensor(m, dtype=torch.float)
    return ids, mask
