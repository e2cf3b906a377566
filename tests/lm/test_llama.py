import pytest
import torch

from dialect.lm import DecoderLM, LMConfig, SamplingConfig
from dialect.lm.llama import to_llama


@pytest.mark.parametrize("tie", [False, True])
def test_llama_export_computes_the_same_logits_and_greedy_tokens(tie):
    torch.manual_seed(0)
    model = DecoderLM(
        LMConfig(vocab_size=200, dim=64, depth=2, heads=4, max_len=64, tie_embeddings=tie)
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # non-trivial norm gains, so a swapped norm would show
                p.add_(0.2 * torch.randn_like(p))
    llama = to_llama(model)
    ids = torch.randint(0, 200, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(llama(ids).logits, model(ids), rtol=1e-4, atol=1e-5)
        ours = model.generate(None, 12, SamplingConfig(temperature=0.0), ids=ids[:1, :8])
        theirs = llama.generate(
            ids[:1, :8],
            max_new_tokens=12,
            min_new_tokens=12,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    assert torch.equal(theirs[:, 8:], ours)


def test_llama_export_refuses_what_llama_cannot_express():
    with pytest.raises(ValueError, match="Llama"):
        to_llama(DecoderLM(LMConfig(vocab_size=10, dim=32, depth=1, heads=2, positions="learned")))
