"""The kernel benchmark's switches: each setting traces its own step with the kernels it names,
all decode the same greedy tokens, and the switches are restored afterwards."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks` is not installed

from benchmarks.bench_decode_kernels import SETTINGS, setting, steps  # noqa: E402

import dialect.nn.blocks as blocks  # noqa: E402
import dialect.nn.linear as linear  # noqa: E402
from dialect.lm import DecoderLM, LMConfig  # noqa: E402


@pytest.mark.parametrize("batch", [1, 4])
def test_each_setting_runs_its_kernels_and_decodes_the_same_tokens(batch):
    torch.manual_seed(0)
    torch._dynamo.reset()  # the step's code is shared: earlier tests' traces must not fill its cache
    model = DecoderLM(LMConfig(vocab_size=64, dim=32, depth=2, heads=2, max_len=64)).eval().compile_decoding()
    before = linear.ROWDOT_ROWS, blocks.ONE_QUERY_ATTENTION, linear.STORE_ROWDOT_INPUT
    tokens = {}
    with torch.inference_mode():
        for name, switches in SETTINGS.items():
            with setting(*switches, batch=batch):
                seconds, tokens[name] = steps(model, 24, 8, scoped=switches[-1], batch=batch)
                caches = model.new_caches(batch, 24)
                model(torch.ones(batch, 4, dtype=torch.long), caches=caches)  # an eager prefill
                with torch.profiler.profile() as prof:  # one compiled step
                    model(torch.ones(batch, 1, dtype=torch.long), caches=caches, start=4)
            ops = {e.key for e in prof.key_averages()}
            rowdot, fused_attention = switches[:2]
            assert seconds > 0 and tokens[name].shape == (8 * batch,)
            assert ("aten::baddbmm" in ops) == (rowdot == 0), (name, ops)
            assert any("scaled_dot_product" in op for op in ops) == (not fused_attention), (name, ops)
    assert before == (linear.ROWDOT_ROWS, blocks.ONE_QUERY_ATTENTION, linear.STORE_ROWDOT_INPUT)
    first = next(iter(tokens.values()))
    assert all(torch.equal(first, t) for t in tokens.values())
