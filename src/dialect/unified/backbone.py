"""Tar on a local Hugging Face causal LM (`TarConfig.hf_lm`): loading, the grown vocabulary, the
initialisation of the new rows, and export back to a plain `transformers` folder.

Vocabulary (see `unified.vocab`, `text="lm"`): the backbone's tokenizer gives the text ids
[0, n_text), n_text = len(tokenizer); Tar's tokens follow as tokenizer tokens of their own, in the
id order of `TarVocab`: `<|system|> <|user|> <|assistant|> <|end|>` (Tar's chat template is the
same on every backbone), `<im_start> <im_end>`, one `<S_k>` per TA-Tok scale, then `<I0>` ..
`<I{K-1}>`, one per TA-Tok code. They are added as special tokens (never split, never normalised,
dropped by `decode(skip_special_tokens=True)`), and the embedding table and head are resized to
len(vocab) rows. A checkpoint whose table is padded beyond its tokenizer (Qwen2.5: 151,936 rows for
151,665 tokens) loses the unused rows: Tar's tokens take ids from len(tokenizer) on.

New rows (`init_new_rows`; the backbone's text rows stay as pretrained, in every mode):
    text-aligned  image row i from TA-Tok code i (below); markers as in `random`
    random        N(0, s^2), s = the std of the text rows' entries (the LM's own scale)
    mean          the mean text row
Image rows from the codebook C (K, D), unit rows, into the LM's width d:
    D == d  C itself (the paper: the codebook is built from this LM's own table, `tatok.vq.source`);
    D != d  a least-squares affine map fitted on the codebook's own words: code i is tied to a
            word (`codebook.words`), whose row in this LM is the mean of the rows of its pieces
            under the backbone tokenizer, L_i. Fit [C 1] M ~ L (minimum-norm `lstsq`, so with
            K < D + 1 the fit is exact and each image row starts at its word's row); rows = [C 1] M.
            Chosen over a fixed random orthogonal projection because that keeps C's shape but puts
            it at an arbitrary place in the LM's space (image token "red" nowhere near the word
            "red"), losing the text alignment TA-Tok exists for; the linear fit keeps both: codes
            land on their words and the deformation training gave C carries over linearly.
Either way the image rows are then scaled to the mean norm of the text rows. For an untied head
the new output rows are the mean text output row (Hewitt's "mean" init: new tokens start at the
average logit instead of an arbitrary one).

Saved Tar folder: `model.safetensors` holds every weight (the backbone's under `lm.model.`), like
every other model, so checkpoints, EMA and resume need nothing special; `lm/` holds the backbone's
`config.json` and the grown tokenizer, from which `from_pretrained` rebuilds the architecture.
`Tar.save_backbone(dir)` writes a complete folder that plain
`transformers.AutoModelForCausalLM.from_pretrained(dir)` / `AutoTokenizer.from_pretrained(dir)` read.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from dialect.core.errors import DialectError
from dialect.lm.hf import HFCausalLM
from dialect.quant.codebooks import Codebook
from dialect.unified.vocab import TarVocab

LM_DIR = "lm"  # the backbone's config + grown tokenizer inside a saved Tar folder


def load_tokenizer(folder: str | Path):
    """The backbone's `AutoTokenizer` from a local folder (never downloaded)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(Path(folder).expanduser(), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DialectError(f"cannot load a tokenizer from {folder}: {exc}") from None


def pad_token(tokenizer) -> str:
    """The text token that pads batches: the tokenizer's pad token, else its end-of-sequence token."""
    token = tokenizer.pad_token or tokenizer.eos_token
    if not token:
        raise DialectError(f"{type(tokenizer).__name__} declares neither a pad nor an eos token")
    return str(token)


def extend_tokenizer(tokenizer, vocab: TarVocab):
    """Add Tar's tokens (markers, then image tokens) to `tokenizer` in place, as special tokens, so
    that each gets its `vocab` id; tokens already there with the right id (a saved Tar's `lm/`) are
    kept. Any other clash is an error. Returns the tokenizer."""
    names = vocab.token_strings(range(vocab.n_text, len(vocab)))
    known = tokenizer.get_vocab()  # token -> id, added tokens included
    missing = [n for n in names if n not in known]
    if len(tokenizer) != vocab.n_text + len(names) - len(missing):
        raise DialectError(
            f"the tokenizer has {len(tokenizer)} tokens, the Tar vocabulary {vocab.n_text} text ids "
            f"+ {len(names)} of its own; point hf_lm at the original LM folder"
        )
    tokenizer.add_tokens(missing, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(names)
    wrong = [n for i, (n, got) in enumerate(zip(names, ids, strict=True)) if got != vocab.n_text + i]
    if wrong:
        raise DialectError(f"the tokenizer already has Tar's tokens at other ids: {wrong[:5]}")
    return tokenizer


def backbone_files(model: nn.Module, tokenizer) -> dict[str, str]:
    """`lm/<name>` -> text: the backbone's config.json and the grown tokenizer's files."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        files = {p.name: p.read_text(encoding="utf-8") for p in Path(tmp).iterdir() if p.is_file()}
    return {f"{LM_DIR}/{name}": text for name, text in files.items()}


# ---------------------------------------------------------------------- new rows
@torch.no_grad()
def image_rows(codebook: Codebook, vocab: TarVocab, table: torch.Tensor) -> torch.Tensor:
    """(K, d) image rows from the codebook's (K, D) codes in the width d of `table` (V, d), the
    backbone's embedding table: C itself when D == d, else the least-squares map of the module
    docstring fitted on the codebook's words."""
    codes = codebook.codes().detach().float().cpu()  # (K, D) unit rows
    width = table.shape[1]
    if codes.shape[1] == width:
        return codes
    try:
        words = codebook.words(range(codes.shape[0]))
    except DialectError:
        raise DialectError(
            f"the TA-Tok codebook is {codes.shape[1]} wide and the LM {width}: the text-aligned init "
            "maps codes through their words, which this codebook does not have; use init=random or mean"
        ) from None
    text = table[: vocab.n_text].detach().float().cpu()
    fit, targets = [], []
    for i, word in enumerate(words):
        ids = [j for j in vocab.encode_text(word) if j != vocab.unk_id]
        if ids:
            fit.append(i)
            targets.append(text[ids].mean(0))
    if not fit:
        raise DialectError("no codebook word tokenizes under the backbone tokenizer: cannot fit the map")
    affine = torch.cat([codes, torch.ones(len(codes), 1)], dim=1)  # (K, D + 1)
    solution = torch.linalg.lstsq(affine[fit], torch.stack(targets), driver="gelsd").solution  # (D + 1, d)
    return affine @ solution


@torch.no_grad()
def init_new_rows(lm: HFCausalLM, vocab: TarVocab, mode: str, codebook: Codebook) -> None:
    """Set the input rows [n_text, V) by `mode` (text-aligned | random | mean, see the module
    docstring) and, for an untied head, the new output rows to the mean text output row."""
    emb = lm.tok_emb.weight  # (V, d)
    n_text, off = vocab.n_text, vocab.image_offset
    text = emb[:n_text].float()
    new = torch.randn(len(vocab) - n_text, emb.shape[1], device=emb.device) * text.std()
    if mode == "mean":
        new[:] = text.mean(0)
    elif mode == "text-aligned":
        rows = image_rows(codebook, vocab, emb).to(new)
        new[off - n_text :] = rows * (text.norm(dim=1).mean() / rows.norm(dim=1).mean())
    emb[n_text:] = new.to(emb.dtype)
    head = lm.head.weight
    if head is not emb:
        head[n_text:] = head[:n_text].mean(0)
