"""A local Hugging Face causal LM (Qwen2, Llama, ...) behind the contract of our `DecoderLM`.

:class:`HFCausalLM` wraps any `transformers` `*ForCausalLM` so that a model written against
`DecoderLM` (Tar) runs it unchanged, sharing `next_token_loss` and `generate` (with its vocabulary
constraints, stop ids and guidance) through :class:`~dialect.lm.decoding.Decoding`:

- `forward(ids (B, T), prefix (B, P, dim) | None, caches, start, token_bias) -> logits (B, N, V)`,
  rows exactly as `DecoderLM.forward` (N = T + 1 with a prefix, else T). Plain ids go in as
  `input_ids`; with a prefix or a token bias the inputs are `[prefix, embed(ids) + bias]` as
  `inputs_embeds`. Positions are explicit, `start .. start + N - 1`, so they count like ours.
- the KV cache is a `transformers.DynamicCache` (`new_caches`), passed as `past_key_values`; the
  HF model appends to it in place. It grows as needed, so the capacity argument is not used.
- `tok_emb` / `head`: the model's input and output embedding modules (the same weight when the
  checkpoint ties them); `resize(V)` grows or shrinks both to V rows.
- `config`: an :class:`~dialect.lm.transformer.LMConfig` that describes the network (vocab_size,
  dim = hidden_size, depth, heads, tie_embeddings) for the shared checks; `max_len` is the
  caller's sequence limit, at most the model's `max_position_embeddings`.

Nothing is downloaded: :func:`load_causal_lm` reads a local folder (`local_files_only=True`) and
keeps the weights in fp32 (the project trains fp32 weights under bf16 autocast), whatever dtype the
checkpoint was saved in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dialect.core.errors import DialectError
from dialect.lm.decoding import Decoding, select_rows
from dialect.lm.transformer import LMConfig


def load_causal_lm(folder: str | Path, weights: bool = True) -> nn.Module:
    """`AutoModelForCausalLM` of a local folder, fp32, train mode. `weights=False` builds the
    architecture from `config.json` alone (random weights, to be overwritten by a checkpoint)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise DialectError(f"{folder} is not a local Hugging Face model folder (no config.json)")
    try:
        if weights:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
        else:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise DialectError(f"cannot load a causal LM from {folder}: {exc}") from None
    return model.train()


class HFCausalLM(nn.Module, Decoding):
    """`model` (a transformers causal LM) with the `DecoderLM` interface; see the module docstring."""

    def __init__(self, model: nn.Module, max_len: int) -> None:
        super().__init__()
        c = model.config.get_text_config()
        limit = getattr(c, "max_position_embeddings", None)
        if limit is not None and max_len > limit:
            raise DialectError(f"lm.max_len {max_len} exceeds the backbone's max_position_embeddings {limit}")
        self.model = model
        self.config = LMConfig(
            vocab_size=model.get_input_embeddings().num_embeddings,
            dim=c.hidden_size,
            depth=c.num_hidden_layers,
            heads=c.num_attention_heads,
            max_len=max_len,
            tie_embeddings=model.get_output_embeddings().weight is model.get_input_embeddings().weight,
        )

    @property
    def tok_emb(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def head(self) -> nn.Module:
        return self.model.get_output_embeddings()

    def resize(self, vocab_size: int) -> None:
        """Input table and output head to `vocab_size` rows. Kept rows are unchanged; new rows are
        the model's plain init (`mean_resizing=False`), for the caller to set."""
        if vocab_size != self.config.vocab_size:
            self.model.resize_token_embeddings(vocab_size, mean_resizing=False)
        self.config.vocab_size = vocab_size

    def new_caches(self, batch: int, capacity: int, device=None, dtype: torch.dtype | None = None):
        """An empty `DynamicCache` (grows; batch, capacity, device and dtype follow the inputs)."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def forward(
        self,
        ids: torch.Tensor | None,
        prefix: torch.Tensor | None = None,
        caches=None,
        start: int = 0,
        token_bias: torch.Tensor | None = None,
        last_only: bool = False,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) long (None = no ids), prefix (B, P, dim) -> logits (B, N, V); `caches` (a
        DynamicCache holding exactly `start` positions) is extended in place; `last_only`: N = 1;
        `select` bool (B, N): those rows only, (M, V), as `DecoderLM.forward` (here the head still
        runs over every row: the model's own head may post-process its logits)."""
        inputs = self._inputs(ids, prefix, token_bias)
        batch, n = next(iter(inputs.values())).shape[:2]
        if n == 0:
            raise ValueError("HFCausalLM.forward needs a prefix or at least one id")
        if start + n > self.config.max_len:
            raise ValueError(f"sequence of {start + n} positions exceeds max_len {self.config.max_len}")
        if caches is not None and caches.get_seq_length() != start:
            raise ValueError(f"the cache holds {caches.get_seq_length()} positions, not start={start}")
        device = next(iter(inputs.values())).device
        positions = torch.arange(start, start + n, device=device).expand(batch, n)
        # as DecoderLM: from the last prefix element
        first = n - 1 if last_only else prefix.shape[1] - 1 if prefix is not None else 0
        out = self.model(
            **inputs, position_ids=positions, past_key_values=caches, use_cache=caches is not None,
            logits_to_keep=n - first,
        )  # fmt: skip
        return select_rows(out.logits, select)  # (B, N, V), or (M, V) with select

    def _inputs(
        self, ids: torch.Tensor | None, prefix: torch.Tensor | None, token_bias: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """{"input_ids": ids} when that is all, else {"inputs_embeds": [prefix, embed(ids) + bias]}."""
        if ids is not None and ids.dim() != 2:
            raise ValueError(f"ids must be (B, T), got {tuple(ids.shape)}")
        if prefix is None and token_bias is None:
            if ids is None:
                raise ValueError("HFCausalLM.forward needs a prefix or ids")
            return {"input_ids": ids}
        dtype = self.tok_emb.weight.dtype
        parts = []
        if prefix is not None:
            if prefix.dim() != 3 or prefix.shape[-1] != self.config.dim or prefix.shape[1] == 0:
                raise ValueError(f"prefix must be (B, P >= 1, {self.config.dim}), got {tuple(prefix.shape)}")
            parts.append(prefix.to(dtype))
        if ids is not None:
            emb = self.tok_emb(ids)
            if token_bias is not None:
                if token_bias.shape != emb.shape:
                    raise ValueError(f"token_bias must be {tuple(emb.shape)}, got {tuple(token_bias.shape)}")
                emb = emb + token_bias.to(dtype)
            parts.append(emb)
        return {"inputs_embeds": torch.cat(parts, dim=1)}
