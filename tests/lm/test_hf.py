"""HFCausalLM keeps DecoderLM's contract: a DecoderLM exported to Llama (`lm.llama.to_llama`, same
logits) and wrapped by the adapter must give the same logits for every input form (ids, prefix,
token bias, a KV cache filled step by step) and the same tokens from the shared `generate`."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.lm import DecoderLM, HFCausalLM, LMConfig, SamplingConfig, load_causal_lm
from dialect.lm.llama import to_llama

V, DIM, MAX = 120, 64, 64


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ours = DecoderLM(LMConfig(vocab_size=V, dim=DIM, depth=2, heads=4, max_len=MAX)).eval()
    return ours, HFCausalLM(to_llama(ours), max_len=MAX).eval()


def test_logits_match_for_ids_prefix_and_token_bias(pair):
    ours, theirs = pair
    ids, prefix = torch.randint(0, V, (2, 9)), torch.randn(2, 3, DIM)
    bias = 0.1 * torch.randn(2, 9, DIM)
    with torch.no_grad():
        for args in ((ids,), (ids, prefix), (None, prefix)):
            torch.testing.assert_close(theirs(*args), ours(*args), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(theirs(ids, prefix, token_bias=bias), ours(ids, prefix, token_bias=bias))
        torch.testing.assert_close(theirs.next_token_loss(ids), ours.next_token_loss(ids))
    assert theirs(ids, prefix).shape == (2, 10, V)  # as DecoderLM: the last prefix row, then every id


def test_a_cache_filled_step_by_step_equals_one_full_forward(pair):
    _, lm = pair
    ids = torch.randint(0, V, (2, 8))
    with torch.no_grad():
        full = lm(ids)
        cache = lm.new_caches(2, 8)
        steps = [lm(ids[:, :5], caches=cache)] + [
            lm(ids[:, t : t + 1], caches=cache, start=t) for t in range(5, 8)
        ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="start"):
        lm(ids[:, :1], caches=cache, start=3)
    with pytest.raises(ValueError, match="max_len"):
        lm(torch.zeros(1, MAX + 1, dtype=torch.long))


def test_shared_generate_gives_the_same_tokens_with_prefix_guidance_and_constraints(pair):
    ours, theirs = pair
    prefix, uncond = torch.randn(2, 3, DIM), torch.randn(2, 3, DIM)
    sampling = SamplingConfig(temperature=0.0, cfg_scale=2.0)
    kw = dict(uncond_prefix=uncond, ids=torch.randint(0, V, (2, 2)), allowed=slice(10, 50))
    out = theirs.generate(prefix, 6, sampling, **kw)
    assert torch.equal(out, ours.generate(prefix, 6, sampling, **kw))
    assert torch.equal(out, theirs.generate(prefix, 6, sampling, use_cache=False, **kw))
    assert int(out.min()) >= 10 and int(out.max()) < 50


def test_a_folder_loads_in_fp32_and_resizes(tmp_path):
    torch.manual_seed(0)
    llama = to_llama(DecoderLM(LMConfig(vocab_size=V, dim=DIM, depth=1, heads=4, max_len=MAX)))
    llama.to(torch.bfloat16).save_pretrained(tmp_path)
    lm = HFCausalLM(load_causal_lm(tmp_path), max_len=MAX)
    assert lm.tok_emb.weight.dtype == torch.float32 and lm.config.vocab_size == V
    lm.resize(V + 7)
    assert lm.tok_emb.weight.shape == (V + 7, DIM) and lm.head.weight.shape == (V + 7, DIM)
    assert lm(torch.tensor([[V + 6]])).shape == (1, 1, V + 7)
    with pytest.raises(DialectError, match="config.json"):
        load_causal_lm(tmp_path / "nope")
