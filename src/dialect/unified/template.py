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
class NullText:
    """The null condition of classifier-free guidance in place of a user's `text`: as many
    `[PAD]` ids as the text has word pieces, so a conditional sequence and its unconditional twin
    have the same length and decode side by side as one batch with one KV cache."""

    text: str


Segment = str | ImageSpan | NullText
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
    if isinstance(seg, NullText):
        return [vocab.pad_id] * len(vocab.encode_text(seg.text))
    if not isinstance(seg, str):
        raise DialectError(f"a conversation segment is a string or an ImageSpan, got {type(seg).__name__}")
    return vocab.encode_text(seg)


def null_conversation(turns: Sequence[Turn]) -> list[Turn]:
    """The unconditional twin of a conversation for classifier-free guidance: every string the
    user wrote becomes `NullText`; images, roles and assistant turns stay (same length)."""
    return [
        (role, [NullText(s) if role == "user" and isinstance(s, str) else s for s in segments])
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
