"""Per-layer torch.compile (`train.compile`): same outputs and gradients as eager, decoding and
copies stay eager, and a compiled micro Tar trains like an eager one."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

from dialect.nn.blocks import Block, Stack
from dialect.nn.compile import CompilableLayer, compile_layers, cpp_compiler, uncompile_layers
from dialect.train import TrainConfig, Trainer
from dialect.train.checkpoint import seed_everything

needs_compiler = pytest.mark.skipif(cpp_compiler() is None, reason="CPU torch.compile needs a C++ compiler")


@needs_compiler
def test_compiled_layers_match_eager_outputs_and_gradients():
    torch.manual_seed(0)
    stack = Stack(32, 2, 4)
    x = torch.randn(2, 7, 32, requires_grad=True)
    eager = stack(x, causal=True)
    eager.square().sum().backward()
    grads = [p.grad.clone() for p in stack.parameters()]
    stack.zero_grad()
    x.grad = None
    assert compile_layers(stack) == 2
    try:
        compiled = stack(x, causal=True)
        compiled.square().sum().backward()
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
        for p, g in zip(stack.parameters(), grads, strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)
        with torch.no_grad():  # another sequence length: dynamic shapes, same results
            y = torch.randn(3, 11, 32)
            got = stack(y)
            uncompile_layers(stack)
            torch.testing.assert_close(got, stack(y), rtol=1e-4, atol=1e-5)
    finally:
        uncompile_layers(stack)


def test_cached_calls_and_copies_run_eagerly():
    block = Block(16, 2)
    compile_layers(block)
    try:
        assert block.forward_fn() is not block._forward  # compiled (a partial of the class's graph)
        assert block.forward_fn(cache=object()) == block._forward  # decoding: eager
        twin = copy.deepcopy(block)  # an EMA shadow must never run the original's graph
        assert twin.forward_fn() == twin._forward
    finally:
        uncompile_layers(block)
    assert block.forward_fn() == block._forward


@needs_compiler
def test_trainer_compiles_the_layers_and_the_loss_falls(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dialect.unified import ShapeWorldTasks
    from dialect.unified.tasks import TaskConfig
    from unified.micro import WORLD, tar

    tasks = TaskConfig(weights={"t2i": 1.0, "caption": 1.0}, scale_weights=[1.0])
    data = ShapeWorldTasks(tasks, WORLD, num_scales=3, seed=0, length=32)
    model = tar(seed=0)
    seed_everything(0)
    cfg = TrainConfig(
        out_dir=str(tmp_path), steps=12, batch_size=8, lr=3e-3, warmup_steps=2, log_every=1,
        ckpt_every=100, progress=False, precision="fp32", device="cpu", compile=True,
    )  # fmt: skip
    calls = []  # (layer, ran compiled) for every layer call of the run
    plain = CompilableLayer.forward_fn

    def spy(self, cache=None):
        fn = plain(self, cache)
        calls.append((self, fn != self._forward))
        return fn

    monkeypatch.setattr(CompilableLayer, "forward_fn", spy)
    trainer = Trainer(model, data, cfg)
    try:
        trainer.fit()
    finally:
        uncompile_layers(model)
    layers = [m for m in model.modules() if isinstance(m, Block)]
    assert trainer.compiled_layers == len(layers) > 0
    trained = {id(layer) for layer, compiled in calls if compiled}
    assert {id(b) for b in model.lm.stack.blocks} <= trained  # the LM's layers trained compiled
    assert all(b.forward_fn() == b._forward for b in layers)  # and run eagerly after the run
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["loss"] for line in lines]
    assert losses[-1] < losses[0] - 0.5, losses
