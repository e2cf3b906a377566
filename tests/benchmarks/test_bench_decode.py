"""The decoding benchmark's bound (the bytes a step reads, the bandwidth it is divided into) and its
prefill FLOP count."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks` is not installed

from benchmarks.bench_decode import prefill, step_bytes  # noqa: E402
from benchmarks.common import BandwidthProbe  # noqa: E402

from dialect.lm import DecoderLM, LMConfig  # noqa: E402
from dialect.lm.llama import to_llama  # noqa: E402


def test_step_bytes_counts_streamed_weights_and_the_cache_not_the_embedding_table():
    config = LMConfig(vocab_size=100, dim=32, depth=2, heads=2, max_len=64)
    model = DecoderLM(config)
    total = sum(p.numel() * 4 for p in model.parameters())
    table = 100 * 32 * 4
    assert step_bytes(model, 0) == total - table + 32 * 4  # one embedding row is read
    assert step_bytes(model, 10) - step_bytes(model, 0) == 10 * 2 * 2 * 32 * 4  # k and v, 2 layers
    tied = DecoderLM(LMConfig(vocab_size=100, dim=32, depth=2, heads=2, max_len=64, tie_embeddings=True))
    assert step_bytes(tied, 0) == sum(p.numel() * 4 for p in tied.parameters())  # the head streams it


def test_bandwidth_probe_keeps_the_best_sample():
    probe = BandwidthProbe(mib=8)
    samples = [probe.sample() for _ in range(3)]
    assert all(s > 0 for s in samples) and probe.best == max(samples)


def test_prefill_counts_every_position_but_the_top_block_and_head_once():
    model = DecoderLM(LMConfig(vocab_size=100, dim=32, depth=2, heads=2, max_len=64)).eval()
    P = 16
    ids = torch.randint(0, 100, (1, P))
    with torch.inference_mode():
        ours_s, hf_s, flops = prefill(model, to_llama(model), ids, repeats=1)
    top = model.stack.blocks[-1]
    once = {top.attn.proj, top.mlp.w13, top.mlp.w2, model.head}  # the last position only
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    body = sum(2 * (1 if m in once else P) * m.in_features * m.out_features for m in linears)
    # q.k and p.v over the P^2 / 2 causal pairs, 2 FLOPs each, in the first layer; the top layer
    # attends from the last query alone: P keys
    attention = 2 * P * P * 32 + 4 * P * 32
    assert ours_s > 0 and hf_s > 0
    assert flops == body + attention
