"""`dialect dryrun`: the paper-scale presets built on the meta device, sized without weights."""

import pytest
import torch

from dialect.cli.dryrun import preset_file
from dialect.cli.main import main
from dialect.core.config import load_config
from dialect.core.errors import DialectError
from dialect.train import memory as M
from dialect.train.dryrun import DryRunConfig, build_lm_meta, build_tatok_meta, dry_run, hf_config, hf_layer

QWEN_1_5B = 1_543_714_304  # Qwen2.5-1.5B, tied embeddings (151,936 x 1536 table)


def _preset(name, *overrides):
    return load_config(DryRunConfig, [preset_file(name)], overrides)


@pytest.fixture(scope="module")
def tatok_report():
    return dry_run(_preset("gpu/tatok"))


@pytest.fixture(scope="module")
def lm_report():
    return dry_run(_preset("gpu/lm"))


def test_paper_tatok_is_built_on_meta_at_the_papers_sizes():
    model = build_tatok_meta(_preset("gpu/tatok"))
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()])  # nothing allocated
    assert model.grid == 27 and [model.num_tokens(k) for k in range(3)] == [729, 169, 81]
    assert model.quantizer.codebook.embeddings.shape == (65536, 1536)  # E: K rows of Qwen2.5's table
    assert model.teacher.feature_dim == 1152


def test_tatok_parameter_counts(tatok_report):
    parts = {p.name: p.count for p in tatok_report.parts}
    teacher = parts["teacher"]
    assert 400e6 < teacher.total < 450e6 and teacher.trainable == 0  # SigLIP2 so400m vision, frozen
    assert parts["quantizer"].trainable == 1536 * 1536 + 1536  # W, b; E is a frozen buffer
    assert parts["quantizer"].buffers == 65536 * 1536
    total = tatok_report.total()
    assert total.trainable == sum(p.count.trainable for p in tatok_report.parts) < 100e6
    assert tatok_report.tokens["images"] == 128 * 32
    assert tatok_report.tokens["teacher grid tokens"] == 128 * 32 * 729


def test_lm_parameter_counts_are_qwen_plus_the_new_rows(lm_report):
    parts = {p.name: p.count for p in lm_report.parts}
    lm_total = sum(c.total for name, c in parts.items() if name.startswith("lm."))
    assert lm_total == QWEN_1_5B + (65536 + 5) * 1536  # + image tokens + <im_start> <im_end> <S0..2>
    assert parts["lm.model.embed_tokens"].total == 217_477 * 1536
    assert parts["tatok"].trainable == 0
    assert lm_report.tokens["tokens"] == 64 * 4 * 2 * 2048


def test_memory_formulas_by_hand(lm_report):
    qwen = hf_layer(hf_config(_preset("gpu/lm").lm, "lm"))
    assert qwen == M.LayerShape(1536, 2 * 2 * 128, 8960, gated=True)
    assert qwen.bytes_per_token() == 2 * (6 * 1536 + 512 + 4 * 8960)
    tokens, vocab = 4 * 2048, 217_477
    expect = tokens * 28 * qwen.bytes_per_token() + tokens * vocab * 10
    assert lm_report.activations["no checkpointing"] == expect
    ckpt = tokens * 28 * 2 * 1536 + tokens * qwen.bytes_per_token() + tokens * vocab * 10
    assert lm_report.activations["checkpointing"] == ckpt
    trainable = lm_report.total().trainable
    assert lm_report.state["adamw"] == 8 * trainable and lm_report.state["grads"] == 4 * trainable
    assert lm_report.per_gpu(True) < lm_report.per_gpu(False)
    # FSDP: the trainable weights, grads and moments split over the GPUs, the frozen TA-Tok whole
    frozen = 4 * (lm_report.total().total - trainable + lm_report.total().buffers)
    sharded = 16 * trainable // lm_report.gpus + frozen + ckpt
    assert lm_report.gpus == 64 and lm_report.per_gpu(True, fsdp=True) == sharded


def test_lm_build_is_meta_and_tied():
    lm = build_lm_meta(_preset("gpu/lm"))
    assert all(p.is_meta for p in lm.parameters())
    assert lm.lm_head.weight is lm.model.embed_tokens.weight


def test_cli_prints_the_report_and_rejects_bad_presets(capsys):
    assert main(["dryrun", "gpu/tatok", "step.micro_batch=4"]) == 0
    out = capsys.readouterr().out
    assert "729/169/81" in out and "total with checkpointing" in out
    assert main(["dryrun", "gpu/nope"]) == 2
    assert "gpu/lm" in capsys.readouterr().err  # names the shipped presets
    assert main(["dryrun", "gpu/lm", "lm.model_type=nonsense"]) == 2
    assert "bad lm architecture" in capsys.readouterr().err


def test_bad_step_is_a_clear_error():
    with pytest.raises(DialectError, match="micro_batch"):
        dry_run(_preset("gpu/lm", "step.micro_batch=0"))
    with pytest.raises(DialectError, match="recipe"):
        dry_run(_preset("gpu/lm", "recipe=ardtok"))


def test_meta_build_leaves_no_default_device():
    build_tatok_meta(_preset("gpu/tatok"))
    assert not torch.zeros(1).is_meta  # the meta device was a context, not a global default
