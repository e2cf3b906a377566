"""The decoder-only LM (one transformer with a KV cache) and sampling, reused by every AR model."""

from dialect.lm.sampling import SamplingConfig, apply_cfg, filter_logits, sample, vocab_mask
from dialect.lm.transformer import DecoderLM, LMConfig

__all__ = ["DecoderLM", "LMConfig", "SamplingConfig", "apply_cfg", "filter_logits", "sample", "vocab_mask"]
