"""The decoder-only LM (one transformer with a KV cache) and sampling, reused by every AR model;
`HFCausalLM` runs a local Hugging Face causal LM behind the same interface."""

from dialect.lm.hf import HFCausalLM, load_causal_lm
from dialect.lm.sampling import SamplingConfig, apply_cfg, filter_logits, sample, vocab_mask
from dialect.lm.transformer import DecoderLM, LMConfig

__all__ = ["DecoderLM", "HFCausalLM", "LMConfig", "SamplingConfig", "apply_cfg", "filter_logits", "sample"]
__all__ += ["load_causal_lm", "vocab_mask"]
