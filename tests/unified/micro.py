"""A micro Tar on 16x16 ShapeWorld: a random micro TA-Tok (16 / 4 / 1 tokens per scale, K = 64)
and a 2-layer width-64 LM. Building the vocabulary reads the shipped MiniLM tokenizer."""

from __future__ import annotations

import functools

from detok.micro import tatok_cfg  # tests/ is on sys.path (rootdir-relative packages)
from dialect.lm import LMConfig
from dialect.unified import Tar, TarConfig, TarVocab, VocabConfig
from dialect.world import WorldConfig

WORLD = WorldConfig(size=16, max_objects=2)


@functools.cache
def vocab() -> TarVocab:
    return TarVocab.build(VocabConfig(num_image_codes=64, num_scales=3))


def tar(init: str = "text-aligned", dim: int = 64, seed: int = 0, **kw) -> Tar:
    import torch

    torch.manual_seed(seed)
    cfg = TarConfig(tatok=tatok_cfg(), lm=LMConfig(dim=dim, depth=2, heads=2, max_len=96), init=init, **kw)
    model = Tar(cfg, vocab())
    model.init_embeddings()
    return model
