"""Vector quantization: one quantizer, text-aligned and learned codebooks, usage metrics.

Layer: `quant` sits above `tokenizers` and below `encoders` in the one-way import order; it uses
torch.distributed directly (never `dialect.train`). Every quantizer follows one contract:
`z_q, ids, aux = quantizer(z)` for channel-last z (..., D), and `quantizer.lookup(ids)`.
"""

from dialect.quant.codebooks import Codebook, LearnedCodebook, TextAlignedCodebook
from dialect.quant.embeddings import (
    TokenTable,
    is_special,
    load_token_embeddings,
    read_vocab,
    select_rows,
    token_word,
)
from dialect.quant.usage import CodeUsage, check_ids, entropy_bits, perplexity_from_counts, usage_from_counts
from dialect.quant.vq import VectorQuantizer, VQConfig, restart_vectors

__all__ = [
    "CodeUsage",
    "Codebook",
    "LearnedCodebook",
    "TextAlignedCodebook",
    "TokenTable",
    "VQConfig",
    "VectorQuantizer",
    "check_ids",
    "entropy_bits",
    "is_special",
    "load_token_embeddings",
    "perplexity_from_counts",
    "read_vocab",
    "restart_vectors",
    "select_rows",
    "token_word",
    "usage_from_counts",
]
