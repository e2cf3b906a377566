"""Tar on a local Hugging Face causal LM (`TarConfig.hf_lm`): two tiny random backbones saved to
disk and read back only from there -- a Qwen2 (2 layers, hidden 64, GQA, tied head) with a
byte-level BPE tokenizer trained here on ShapeWorld text and a table padded beyond it, and a Llama
(2 layers, hidden 64, untied head) with the shipped MiniLM WordPiece tokenizer -- each run through
the vocabulary, training (plain loop and the real Trainer), decoding, save / reload and export."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from detok.micro import tatok_cfg
from dialect.core.errors import DialectError
from dialect.core.local_models import minilm_path
from dialect.data.sample import collate
from dialect.lm import LMConfig, SamplingConfig
from dialect.quant import VQConfig
from dialect.train.config import TrainConfig
from dialect.train.trainer import Trainer
from dialect.unified import ShapeWorldTasks, Tar, TarConfig, TaskConfig
from dialect.unified.tasks import conversation
from dialect.unified.vocab import shapeworld_corpus

from .micro import WORLD

MINILM_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _qwen(folder, hidden: int = 64):
    """A random 2-layer Qwen2 + a 400-piece byte-level BPE, table padded by 16 unused rows."""
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(shapeworld_corpus(60, 40), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok) + 16, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
    )  # fmt: skip
    Qwen2ForCausalLM(cfg).save_pretrained(folder)
    return folder


def _llama(folder):
    """A random 2-layer Llama (untied head) over the 30,522 MiniLM WordPiece pieces."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True)
    for name in MINILM_FILES:
        shutil.copy(minilm_path() / name, folder / name)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=30522, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=256, tie_word_embeddings=False,
    )  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"qwen": _qwen(root / "qwen"), "llama": _llama(root / "llama")}


def _tar(folder, init: str = "text-aligned", seed: int = 0, **kw) -> Tar:
    torch.manual_seed(seed)
    cfg = TarConfig(
        tatok=kw.pop("tatok", tatok_cfg()), lm=LMConfig(max_len=96), init=init, hf_lm=str(folder), **kw
    )
    model = Tar(cfg)
    model.init_embeddings()
    return model


def _batch(n: int = 2) -> dict:
    samples = []
    for task in ("caption", "vqa", "t2i", "ti2i"):
        ds = ShapeWorldTasks(TaskConfig(weights={task: 1.0}, scale_weights=[1.0]), WORLD, 3, seed=5)
        samples += [ds[i] for i in range(n)]
    return collate(samples)


@pytest.mark.parametrize("name", ["qwen", "llama"])
def test_text_ids_are_the_backbone_tokenizers_and_tar_tokens_follow(folders, name):
    from transformers import AutoTokenizer

    m = _tar(folders[name])
    v, tok = m.vocab, AutoTokenizer.from_pretrained(folders[name])
    text = "Is the small red triangle left of the big box? xylophone"
    assert v.encode_text(text) == tok.encode(text, add_special_tokens=False)
    assert v.n_text == len(tok) and v.config.text == "lm"
    assert v.config.pad_token == {"qwen": "<|endoftext|>", "llama": "[PAD]"}[name]
    assert len(v) == v.n_text + len(v.specials) + 64  # 4 chat markers, <im_start> <im_end>, 3 scales, K
    assert m.lm.tok_emb.weight.shape == (len(v), 64) and m.lm.head.weight.shape[0] == len(v)
    grown = m.lm_tokenizer
    assert len(grown) == len(v)
    assert grown.convert_tokens_to_ids(["<im_start>", "<S2>", "<I0>", "<I63>"]) == [
        v.special("<im_start>"), v.scale_id(2), v.image_offset, v.image_offset + 63,
    ]  # fmt: skip
    specials = set(tok.all_special_ids)  # [CLS] [SEP] [MASK] ... / <|endoftext|>: never in a reply
    assert specials and not specials & set(v.reply_ids.tolist())
    assert v.decode_text(v.encode_text("a blue circle")) == "a blue circle"


def test_a_padded_table_gives_its_unused_rows_to_tar_tokens(folders):
    from transformers import AutoConfig

    rows = AutoConfig.from_pretrained(folders["qwen"]).vocab_size
    m = _tar(folders["qwen"])
    assert m.vocab.n_text == rows - 16 and m.lm.config.vocab_size == len(m.vocab)
    assert m.config.lm.dim == 64 and m.config.lm.depth == 2 and m.config.lm.tie_embeddings


@pytest.mark.parametrize("name", ["qwen", "llama"])
def test_train_generate_save_reload_and_export(folders, name, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = _tar(folders[name])
    batch = _batch()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(20):
        out = m.training_losses(batch)
        losses.append(out["loss"].item())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0] and {"image_loss", "text_loss"} <= set(out)
    m.eval()
    meta, spans = batch["meta"], m.image_spans(batch["image"])
    caption = m.generate_text([conversation(meta[0], spans[0], None)[:1]], max_new_tokens=12)[0]
    assert isinstance(caption, str) and "<I" not in caption
    for scale in (0, 2):
        codes = m.generate_codes(
            [[("user", ["a red circle"])]] * 2, scale, generator=torch.Generator().manual_seed(0)
        )
        assert (
            codes.shape == (2, m.tatok.num_tokens(scale)) and 0 <= int(codes.min()) <= int(codes.max()) < 64
        )

    m.save_pretrained(tmp_path / "tar")
    n = Tar.from_pretrained(tmp_path / "tar").eval()
    ids = torch.randint(0, len(m.vocab), (2, 20))
    assert torch.equal(n.lm(ids), m.lm(ids))
    greedy = SamplingConfig(temperature=0.0)
    prompt = [[("user", ["a green square above a cross"])]]
    assert torch.equal(n.generate_codes(prompt, 0, greedy), m.generate_codes(prompt, 0, greedy))

    m.save_backbone(tmp_path / "hf")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = tok("a blue circle left of a red square", add_special_tokens=False, return_tensors="pt").input_ids
    assert text.tolist()[0] == m.vocab.encode_text("a blue circle left of a red square")
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=text).logits, m.lm(text), atol=1e-5)
    assert len(tok) == len(m.vocab) and tok.convert_tokens_to_ids("<I5>") == m.vocab.image_offset + 5


def test_cached_decoding_equals_full_recomputation(folders):
    m = _tar(folders["qwen"]).eval()
    ids = torch.randint(0, m.vocab.n_text, (2, 7))
    greedy = SamplingConfig(temperature=0.0)
    args = dict(ids=ids, allowed=m.vocab.image_range)
    cached = m.lm.generate(None, 10, greedy, **args)
    assert torch.equal(cached, m.lm.generate(None, 10, greedy, use_cache=False, **args))
    assert int(cached.min()) >= m.vocab.image_offset


def test_widths_that_differ_map_codes_onto_their_words_by_least_squares(folders):
    m = _tar(folders["qwen"])  # codebook 384-d (MiniLM), LM 64-d: the fitted map
    v, emb = m.vocab, m.lm.tok_emb.weight.detach()
    words = m.tatok.quantizer.codebook.words(range(64))
    word_rows = torch.stack([emb[v.encode_text(w)].mean(0) for w in words])
    img = emb[v.image_range]
    # K = 64 < D + 1: the minimum-norm fit is exact, so image token i starts at its word's row
    assert F.cosine_similarity(img, word_rows).min() > 0.999
    text = emb[: v.n_text]
    assert img.norm(dim=1).mean() == pytest.approx(text.norm(dim=1).mean().item(), rel=1e-4)
    learned = tatok_cfg(vq=VQConfig(dim=384, num_codes=64, codebook="learned"))
    with pytest.raises(DialectError, match="init=random or mean"):
        _tar(folders["qwen"], tatok=learned)


def test_matching_widths_copy_the_codebook(tmp_path):
    m = _tar(_qwen(tmp_path / "wide", hidden=384))
    img = m.lm.tok_emb.weight.detach()[m.vocab.image_range]
    codes = m.tatok.quantizer.codebook.codes()
    assert torch.allclose(F.normalize(img, dim=1) @ F.normalize(img, dim=1).T, codes @ codes.T, atol=1e-4)


def test_other_init_modes_keep_the_pretrained_text_rows(folders):
    from transformers import AutoModelForCausalLM

    orig = AutoModelForCausalLM.from_pretrained(folders["llama"])
    text_in, text_out = orig.get_input_embeddings().weight, orig.get_output_embeddings().weight
    for mode in ("mean", "random", "text-aligned"):
        m = _tar(folders["llama"], init=mode)
        emb, head, n = m.lm.tok_emb.weight.detach(), m.lm.head.weight.detach(), m.vocab.n_text
        assert torch.equal(emb[:n], text_in) and torch.equal(head[:n], text_out)
        assert torch.allclose(head[n:], text_out.mean(0).expand(len(m.vocab) - n, -1))  # untied: mean rows
        if mode == "mean":
            assert torch.allclose(emb[n:], text_in.mean(0).expand(len(m.vocab) - n, -1))
        if mode == "random":
            assert emb[n:].std().item() == pytest.approx(text_in.std().item(), rel=0.1)


def test_the_trainer_trains_checkpoints_and_exports_a_hf_tar(folders, tmp_path):
    tasks = TaskConfig(weights={"t2i": 1.0, "caption": 1.0}, scale_weights=[1.0])
    data = ShapeWorldTasks(tasks, WORLD, num_scales=3, seed=0, length=64)
    cfg = TrainConfig(
        out_dir=str(tmp_path / "run"), steps=3, batch_size=4, lr=1e-3, warmup_steps=1, log_every=1,
        ckpt_every=2, progress=False, precision="fp32", device="cpu", ema_decay=0.9,
    )  # fmt: skip
    m = _tar(folders["qwen"])
    Trainer(m, data, cfg, run_config=cfg).fit()
    saved = Tar.from_pretrained(tmp_path / "run" / "model")  # the EMA weights
    assert saved.config == m.config and (tmp_path / "run" / "model" / "lm" / "tokenizer.json").is_file()
    resumed = _tar(folders["qwen"], seed=1)  # a different init: the checkpoint must overwrite it
    Trainer(resumed, data, cfg, run_config=cfg).fit()  # at its last step already: loads, trains no more
    ids = torch.randint(0, len(m.vocab), (1, 9))
    assert torch.equal(resumed.lm(ids), m.lm(ids))


def test_the_lm_recipe_builds_and_trains_tar_on_a_backbone_folder(folders, tmp_path):
    from dialect.data.build import DataConfig
    from dialect.tokenizers.tatok import TATok
    from dialect.train.recipes.lm import LMRun, train

    TATok(tatok_cfg()).save_pretrained(tmp_path / "tatok")
    tasks = TaskConfig(weights={"t2i": 1.0, "caption": 1.0}, scale_weights=[1.0])
    cfg = LMRun(
        model=TarConfig(lm=LMConfig(max_len=96), hf_lm=str(folders["qwen"]), tasks=tasks),
        tatok=str(tmp_path / "tatok"), data=DataConfig(size=16), world=WORLD,
        train=TrainConfig(
            out_dir=str(tmp_path / "run"), steps=2, batch_size=4, warmup_steps=1, log_every=1, progress=False,
            precision="fp32", device="cpu",
        ),
    )  # fmt: skip
    assert train(cfg)["step"] == 2
    m = Tar.from_pretrained(tmp_path / "run" / "model")
    assert m.config.hf_lm == str(folders["qwen"]) and m.vocab.config.text == "lm"
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "hf", local_files_only=True)
    assert exported.get_input_embeddings().num_embeddings == m.lm.config.vocab_size
    torch.testing.assert_close(exported.get_input_embeddings().weight, m.lm.tok_emb.weight)


def test_bad_backbone_settings_are_one_line_errors(folders, tmp_path):
    with pytest.raises(DialectError, match="no config.json|cannot load"):
        _tar(tmp_path)
    with pytest.raises(DialectError, match="max_position_embeddings"):
        Tar(TarConfig(tatok=tatok_cfg(), lm=LMConfig(max_len=4096), hf_lm=str(folders["qwen"])))
    shifted = LMConfig(max_len=96, token_shift=True)
    with pytest.raises(DialectError, match="token_shift"):
        Tar(TarConfig(tatok=tatok_cfg(), lm=shifted, hf_lm=str(folders["qwen"])))
    m = _tar(folders["qwen"])
    with pytest.raises(DialectError, match="text_model"):
        m.init_embeddings(text_model=str(minilm_path()))
    cfg = TarConfig(tatok=tatok_cfg(), lm=LMConfig(max_len=96))
    cfg.vocab.text = "lm"
    with pytest.raises(DialectError, match="hf_lm"):
        Tar(cfg)
    m.save_pretrained(tmp_path / "tar")
    shutil.rmtree(tmp_path / "tar" / "lm")
    with pytest.raises(DialectError, match="lm/config.json"):
        Tar.from_pretrained(tmp_path / "tar")


def test_activation_checkpointing_reaches_the_hf_layers_and_changes_nothing(folders):
    from dialect.nn.blocks import enable_checkpointing

    batch = _batch(1)
    plain, ckpt = _tar(folders["qwen"]), _tar(folders["qwen"])
    assert enable_checkpointing(ckpt) == 2 and ckpt.lm.model.is_gradient_checkpointing
    losses = []
    for m in (plain, ckpt):
        m.train()
        loss = m.training_losses(batch)["loss"]
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=0)
    grads = [m.lm.tok_emb.weight.grad for m in (plain, ckpt)]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)
