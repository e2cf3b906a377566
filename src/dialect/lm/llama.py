"""DecoderLM <-> Hugging Face `LlamaForCausalLM`: the same network, weight for weight.

Our core is a Llama-style decoder (pre-norm RMSNorm, SwiGLU, RoPE, no biases), so a `DecoderLM`
with `positions="rope"`, no prefix projection and no qk-norm maps onto a `LlamaConfig` exactly.
Two layout differences are translated here rather than in the model:

- our attention projects q, k, v with one fused `qkv` Linear (rows q | k | v) and the SwiGLU with
  one fused `w13` (rows gate | up); Llama keeps separate `q_proj/k_proj/v_proj` and
  `gate_proj/up_proj`;
- our RoPE rotates interleaved lane pairs (2i, 2i + 1), Llama's `rotate_half` rotates (i, i + d/2)
  with the same frequency base^(-2i/d). Permuting each head's q and k rows to [even lanes, odd
  lanes] turns one into the other and leaves every q.k product, hence every logit, unchanged.

Used to compare our decoding against `transformers.generate` on identical weights
(benchmarks/bench_decode.py) and to hand a trained LM to the `transformers` ecosystem.
"""

from __future__ import annotations

import torch

from dialect.lm.transformer import DecoderLM


def _rope_permutation(heads: int, head_dim: int) -> torch.Tensor:
    """Row order turning interleaved-pair heads into half-split heads: (heads * head_dim,) long."""
    per_head = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
    return (torch.arange(heads)[:, None] * head_dim + per_head[None]).flatten()


def llama_config(model: DecoderLM):
    """The `transformers.LlamaConfig` of the same architecture as `model`."""
    from transformers import LlamaConfig

    c = model.config
    if c.positions != "rope" or c.prefix_dim or c.qk_norm:
        raise ValueError("only a DecoderLM with RoPE, no prefix projection and no qk-norm maps onto Llama")
    return LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.dim,
        intermediate_size=model.stack.blocks[0].mlp.w2.in_features,
        num_hidden_layers=c.depth,
        num_attention_heads=c.heads,
        num_key_value_heads=c.heads,
        max_position_embeddings=c.max_len,
        rms_norm_eps=model.stack.norm.eps,
        rope_theta=10000.0,
        tie_word_embeddings=c.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
    )


def to_llama(model: DecoderLM):
    """A `LlamaForCausalLM` (fp32, eval mode) computing the same logits as `model`."""
    from transformers import LlamaForCausalLM

    config = llama_config(model)
    dim, heads, hd = model.config.dim, model.config.heads, model.head_dim
    perm = _rope_permutation(heads, hd)
    state = {"model.embed_tokens.weight": model.tok_emb.weight, "model.norm.weight": model.stack.norm.weight}
    if not model.config.tie_embeddings:
        state["lm_head.weight"] = model.head.weight
    for i, block in enumerate(model.stack.blocks):
        p = f"model.layers.{i}."
        q, k, v = block.attn.qkv.weight.split(dim)
        gate, up = block.mlp.w13.weight.chunk(2)
        state |= {
            p + "input_layernorm.weight": block.norm1.weight,
            p + "post_attention_layernorm.weight": block.norm2.weight,
            p + "self_attn.q_proj.weight": q[perm],
            p + "self_attn.k_proj.weight": k[perm],
            p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": block.attn.proj.weight,
            p + "mlp.gate_proj.weight": gate,
            p + "mlp.up_proj.weight": up,
            p + "mlp.down_proj.weight": block.mlp.w2.weight,
        }
    llama = LlamaForCausalLM(config)
    missing, unexpected = llama.load_state_dict(
        {k: t.detach().float() for k, t in state.items()}, strict=False
    )
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"Llama weight mapping is off: missing {missing}, unexpected {unexpected}")
    return llama.float().eval()
