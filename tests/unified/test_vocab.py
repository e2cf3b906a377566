"""Tar's vocabulary: the compact MiniLM WordPiece subset, markers and image ids."""

import pytest
import torch

from dialect.core.errors import DialectError
from dialect.unified import TarVocab, VocabConfig

from .micro import vocab


def test_shapeworld_words_are_single_pieces_and_any_ascii_word_still_tokenizes():
    v = vocab()
    assert v.n_text < 400  # compact: ShapeWorld pieces + ASCII characters
    ids = v.encode_text("Is the small red triangle left of the big box?")
    assert v.unk_id not in ids and len(ids) == 11  # 10 words and "?"
    rare = v.encode_text("xylophone qwerty")  # not ShapeWorld words: spelled with ## pieces
    assert v.unk_id not in rare and len(rare) > 2
    assert v.decode_text(rare) == "xylophone qwerty"
    assert v.encode_text("café") == v.encode_text("cafe")  # the BERT normaliser strips accents
    assert v.encode_text("☃") == [v.unk_id]  # a character outside the subset: the word is unknown


def test_id_layout_markers_and_image_codes():
    v = vocab()
    assert len(v) == v.n_text + len(v.specials) + 64
    assert v.image_range == slice(v.image_offset, len(v))
    codes = torch.tensor([[0, 63], [5, 7]])
    assert torch.equal(v.codes(v.image_ids(codes)), codes)
    with pytest.raises(DialectError, match="image"):
        v.codes(torch.tensor([3]))
    assert v.token_strings([v.scale_id(2), v.image_offset + 9]) == ["<S2>", "<I9>"]
    # every kept piece remembers its MiniLM row
    assert len(v.source_rows) == v.n_text and int(v.source_rows.max()) < 30522


def test_save_and_load_round_trip(tmp_path):
    v = vocab()
    v.save(tmp_path)
    w = TarVocab.load(tmp_path, v.config)
    text = "move the purple cross to the right"
    assert w.encode_text(text) == v.encode_text(text) and len(w) == len(v)
    with pytest.raises(DialectError, match="not a saved Tar"):
        TarVocab.load(tmp_path / "nope", v.config)


def test_full_vocabulary_mode_keeps_all_minilm_pieces():
    v = TarVocab.build(VocabConfig(text="full", num_image_codes=8, num_scales=1))
    assert v.n_text == 30522 and len(v) == 30522 + len(v.specials) + 8
    with pytest.raises(DialectError, match="vocab.text"):
        TarVocab.build(VocabConfig(text="bogus"))
