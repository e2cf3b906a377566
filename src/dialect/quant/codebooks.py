"""Codebook sources behind one interface: `codes() -> (K, D)` fp32, `num_codes` K, `dim` D.

- :class:`TextAlignedCodebook` (TA-Tok, the paper's choice): `C = L2norm(W E + b)`. E is K rows of
  a language model's token-embedding table, a frozen persistent buffer (so a checkpoint carries it
  and it stays bit-identical through training); W (D x De) and b are a trainable `nn.Linear`. A
  code is tied to its word: it cannot be moved on its own, so dead-code restart does not apply.
- :class:`LearnedCodebook` (the ablation baseline): a free K x D parameter, normal init; for the
  cosine metric its rows are L2-normalised at init and in `codes()`.

Codes are always computed in fp32 with autocast disabled (quantization runs in fp32).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dialect.core.errors import DialectError
from dialect.quant.embeddings import load_token_embeddings, select_rows, token_word
from dialect.quant.usage import check_ids


class Codebook(nn.Module):
    """Base class: K codes of width D. Subclasses implement `_compute_codes()`.

    `codes()` caches its result while no gradient is needed (no_grad / inference, or frozen
    weights) and no parameter or buffer has changed (version counters; `.to()` clears it), so
    evaluation does not recompute W E + b per batch.
    """

    num_codes: int
    dim: int
    movable: bool = False  # whether single codes may be re-initialised (dead-code restart)

    def __init__(self) -> None:
        super().__init__()
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def _compute_codes(self) -> torch.Tensor:
        raise NotImplementedError

    def codes(self) -> torch.Tensor:
        """(K, D) fp32 codes, computed with autocast disabled."""
        tensors = [*self.parameters(), *self.buffers()]
        need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)
        if not need_grad and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        device = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device, enabled=False):
            codes = self._compute_codes()
        self._cache = None if need_grad else (key, codes)
        return codes

    def _apply(self, fn, *args, **kwargs):  # .to() / .half() / .cuda(): drop the cached codes
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    def check_trainable(self) -> None:
        """Raise DialectError when the codebook cannot be trained as it stands."""

    def reset_codes_(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        """Overwrite codes `index` (M,) with `vectors` (M, D); only movable codebooks support it."""
        raise DialectError(f"{type(self).__name__} codes cannot be re-initialised one by one")

    def words(self, ids: torch.Tensor | Sequence[int]) -> list:
        """Source words of code ids; only text-aligned codebooks have them."""
        raise DialectError(f"a {type(self).__name__} has no source words; use a text-aligned codebook")


class LearnedCodebook(Codebook):
    """A free trainable K x D codebook (`weight`), normal init; rows unit-norm when `normalize`."""

    movable = True

    def __init__(self, num_codes: int, dim: int, normalize: bool = True) -> None:
        super().__init__()
        self.num_codes, self.dim, self.normalize = num_codes, dim, normalize
        weight = torch.randn(num_codes, dim)
        self.weight = nn.Parameter(F.normalize(weight, dim=-1) if normalize else weight)

    def _compute_codes(self) -> torch.Tensor:
        w = self.weight.float()
        return F.normalize(w, dim=-1) if self.normalize else w  # (K, D)

    @torch.no_grad()
    def reset_codes_(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        self.weight[index] = vectors.to(self.weight.dtype)


class TextAlignedCodebook(Codebook):
    """`codes() = L2norm(W E + b)`: E (K, De) frozen word embeddings, W (D x De) and b trainable.

    W starts as the identity when D == De (codes start exactly at the normalised word embeddings,
    which is what the LM initialisation of Tar relies on), else as a semi-orthogonal matrix; b = 0.
    `tokens` are the K source token strings, code id i <-> `tokens[i]`.
    Build from a language model with :meth:`from_language_model`; the plain constructor makes
    E zeros, to be filled by loading a checkpoint.
    """

    def __init__(self, num_codes: int, embed_dim: int, dim: int, tokens: Sequence[str] = ()) -> None:
        super().__init__()
        if tokens and len(tokens) != num_codes:
            raise DialectError(f"a text-aligned codebook of {num_codes} codes got {len(tokens)} tokens")
        self.num_codes, self.embed_dim, self.dim = num_codes, embed_dim, dim
        self.tokens = list(tokens)
        self.register_buffer("embeddings", torch.zeros(num_codes, embed_dim), persistent=True)  # E
        self.proj = nn.Linear(embed_dim, dim, bias=True)  # W, b
        with torch.no_grad():
            if embed_dim == dim:
                nn.init.eye_(self.proj.weight)
            else:
                nn.init.orthogonal_(self.proj.weight)
            self.proj.bias.zero_()

    @classmethod
    def from_language_model(
        cls, source: str | Path | None, num_codes: int, dim: int, rule: str = "words"
    ) -> TextAlignedCodebook:
        """Pick K rows of `source`'s embedding table with `select_rows(rule)` ("" -> MiniLM)."""
        table = load_token_embeddings(source)
        rows, tokens = select_rows(table.tokens, num_codes, rule, table.special)
        book = cls(num_codes, table.weight.shape[1], dim, tokens)
        book.embeddings.copy_(table.weight[rows])
        return book

    def check_trainable(self) -> None:
        """E all zeros (a codebook built from a saved config, its checkpoint never loaded) makes
        every code normalise(b), one point: training would silently collapse onto it."""
        if not bool(self.embeddings.any()):
            raise DialectError(
                "the text-aligned codebook's word embeddings E are all zero: it was built from a saved "
                "config without loading its checkpoint. Load the model with from_pretrained, or build it "
                "from a config without vq.tokens so that E is read from the language model"
            )

    def _compute_codes(self) -> torch.Tensor:
        w, b = self.proj.weight.float(), self.proj.bias.float()
        return F.normalize(torch.addmm(b, self.embeddings.float(), w.t()), dim=-1)  # (K, D) unit rows

    def words(self, ids: torch.Tensor | Sequence[int]) -> list:
        """Source words of code ids, nested like `ids` (word markers "Ġ"/"▁" stripped)."""
        if not self.tokens:
            raise DialectError("this text-aligned codebook was saved without its token strings")
        ids = torch.as_tensor(ids)
        check_ids(ids, self.num_codes)

        def to_words(x):
            return [to_words(v) for v in x] if isinstance(x, list) else token_word(self.tokens[x])

        return to_words(ids.tolist())
