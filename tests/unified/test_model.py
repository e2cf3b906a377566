"""Tar: initialisation modes, constrained decoding, checkpoints, and a micro model that overfits a
handful of samples of every task."""

import pytest
import torch
import torch.nn.functional as F

from dialect.core.errors import DialectError
from dialect.data.sample import collate
from dialect.lm import SamplingConfig
from dialect.unified import ShapeWorldTasks, Tar, TaskConfig
from dialect.unified.tasks import conversation

from .micro import WORLD, tar


def test_init_modes_set_the_new_rows():
    v_text = slice(0, None)
    m = tar("text-aligned", dim=384)  # width = codebook width: the map is the identity
    emb = m.lm.tok_emb.weight.detach()
    v = m.vocab
    img = emb[v.image_range]
    codes = m.tatok.quantizer.codebook.codes()
    # image token i starts at code i: same geometry as the codebook, at the LM's init scale
    assert torch.allclose(F.normalize(img, dim=1) @ F.normalize(img, dim=1).T, codes @ codes.T, atol=1e-4)
    assert img.norm(dim=1).mean() == pytest.approx(0.02 * 384**0.5, rel=1e-3)
    mean = tar("mean", dim=64).lm.tok_emb.weight.detach()
    assert torch.allclose(mean[v.n_text :], mean[: v.n_text].mean(0).expand(len(v) - v.n_text, -1))
    rnd = tar("random", dim=64).lm.tok_emb.weight.detach()
    assert rnd[v.image_range].std().item() == pytest.approx(0.02, rel=0.1)
    # text rows are the same (MiniLM) in every mode
    assert torch.allclose(rnd[: v.n_text], mean[: v.n_text]) and emb[v_text].shape[0] == len(v)
    aligned = tar("text-aligned", dim=64).lm.tok_emb.weight.detach()
    assert torch.allclose(aligned[: v.n_text], rnd[: v.n_text])
    with pytest.raises(DialectError, match="init"):
        tar("bogus")


@pytest.mark.parametrize("scale", [0, 1, 2])
def test_generated_image_span_has_the_scale_length_and_only_image_tokens(scale):
    m = tar().eval()  # untrained: the constraint, not the model, must guarantee the form
    convs = [[("user", ["a red ball"])], [("user", ["two blue boxes above a cross"])]]
    codes = m.generate_codes(convs, scale, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (2, m.tatok.num_tokens(scale))
    assert int(codes.min()) >= 0 and int(codes.max()) < m.vocab.config.num_image_codes


def test_generated_text_has_only_text_tokens():
    m = tar().eval()
    img = m.image_spans(torch.zeros(1, 3, 16, 16))[0]
    sampling = SamplingConfig(temperature=1.0)
    replies = m.generate_text(
        [[("user", [img, "describe the image."])]], 12, sampling, torch.Generator().manual_seed(1)
    )
    assert all("<I" not in r and "<im_start>" not in r and "[PAD]" not in r for r in replies)
    with torch.no_grad():  # the same constraint at the LM level: every sampled id is text or <|end|>
        v = m.vocab
        allowed = torch.tensor([i for i in range(v.n_text) if i != v.pad_id] + [v.special("<|end|>")])
        ids = torch.tensor([[v.special("<|user|>")]])
        out = m.lm.generate(
            None, 30, sampling, ids=ids, allowed=allowed, generator=torch.Generator().manual_seed(2)
        )
        assert torch.isin(out, allowed).all()


def test_save_and_load_round_trip(tmp_path):
    m = tar().eval()
    m.save_pretrained(tmp_path / "tar")
    n = Tar.from_pretrained(tmp_path / "tar").eval()
    ids = torch.randint(0, len(m.vocab), (2, 9))
    assert torch.equal(m.lm(ids), n.lm(ids))
    assert n.vocab.encode_text("a tiny green plus") == m.vocab.encode_text("a tiny green plus")


def _handful(task: str, n: int = 3) -> list[dict]:
    ds = ShapeWorldTasks(TaskConfig(weights={task: 1.0}, scale_weights=[1.0]), WORLD, 3, seed=5)
    return [ds[i] for i in range(n)]


def test_micro_tar_overfits_a_handful_of_samples_of_every_task():
    torch.manual_seed(0)
    m = tar(dim=64)
    samples = [s for t in ("caption", "vqa", "t2i", "i2i", "ti2i") for s in _handful(t)]
    batch = collate(samples)
    opt = torch.optim.AdamW(m.lm.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(250):
        loss = m.training_losses(batch)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    m.eval()
    spans = m.image_spans(batch["image"])
    targets = m.image_spans(batch["target"])
    greedy = SamplingConfig(temperature=0.0)
    for i, meta in enumerate(batch["meta"]):
        turns = conversation(meta, spans[i], targets[i])[:1]  # the user turn
        if meta["task"] in ("caption", "vqa"):
            assert m.generate_text([turns])[0] == m.vocab.decode_text(m.vocab.encode_text(meta["answer"])), (
                meta
            )
        else:
            codes = m.generate_codes([turns], 0, greedy)
            assert torch.equal(codes[0], targets[i].codes), meta["task"]


@pytest.mark.parametrize("out_scale", [0, 1])
def test_edit_targets_anchored_to_their_source(out_scale):
    """ti2i_anchor: an edit's target codes are the source's wherever those are within the margin
    (everywhere at a margin above any cosine gap), and its plain codes at margin 0."""
    batch = collate(_handful("ti2i", 3) + _handful("t2i", 2))
    for meta in batch["meta"]:
        meta["scale"] = out_scale
    m = tar()
    plain = m._sequences(batch)
    m.config.tasks.ti2i_anchor = 3.0  # cosine gaps are <= 2: every position keeps the source's code
    anchored = m._sequences(batch)
    source = m.encode_images(batch["image"][:3], out_scale)
    target = m.encode_images(batch["target"][:3], out_scale)
    assert not torch.equal(source, target)
    n = m.tatok.num_tokens(out_scale)
    for i, meta in enumerate(batch["meta"]):
        seq, ref = anchored[0][i], plain[0][i]
        if meta["task"] == "t2i":
            assert seq == ref  # other tasks' outputs are not anchored
            continue
        end = len(seq) - 2  # ... <im_end> <|end|>
        assert m.vocab.codes(torch.tensor(seq[end - n : end])).tolist() == source[i].tolist()
        assert m.vocab.codes(torch.tensor(ref[end - n : end])).tolist() == target[i].tolist()
    with pytest.raises(DialectError, match="ti2i_anchor"):
        TaskConfig(ti2i_anchor=-1.0).validate(3)


def test_grouped_loss_equals_the_loss_of_one_padded_batch():
    m = tar()
    batch = collate([s for t in ("vqa", "t2i", "ti2i", "caption") for s in _handful(t, 2)])
    got = m.training_losses(batch)
    ids, mask = m.batch_sequences(batch)  # one padded batch, computed directly
    logits = m.lm(ids[:, :-1]).float()
    ce = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none").view(ids.shape[0], -1)
    w = mask[:, 1:]
    assert torch.allclose(got["loss"], (ce * w).sum() / w.sum(), atol=1e-5)
    img = (ids[:, 1:] >= m.vocab.image_offset).float() * w
    assert torch.allclose(got["image_loss"], (ce * img).sum() / img.sum(), atol=1e-5)
    txt = w - img
    assert torch.allclose(got["text_loss"], (ce * txt).sum() / txt.sum(), atol=1e-5)
    m.config.text_loss_weight = 5.0  # text tokens count 5x in the mean; the logged parts stay plain
    weighted = m.training_losses(batch)
    assert torch.allclose(weighted["loss"], ((ce * img).sum() + 5 * (ce * txt).sum()) / (img + 5 * txt).sum())
    assert torch.allclose(weighted["text_loss"], got["text_loss"])
    with pytest.raises(DialectError, match="text_loss_weight"):
        tar(text_loss_weight=0.0)
