"""Two CPU ranks (torchrun, gloo, loopback) train a micro TA-Tok and a micro Tar through the real
Trainer: same weights as one process on the same global batches, only rank 0 writes, and a run
interrupted under DDP resumes on every rank from the checkpoint (see ddp_worker.py). The same holds
for Tar under FSDP, whose ranks each hold half of every parameter and write ordinary checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
MODELS, MODES = ("tatok", "tar", "tar-fsdp"), ("straight", "resume")


def _launch(out: Path, nproc: int) -> subprocess.Popen:
    prefix = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [*prefix, str(WORKER), str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    procs = {n: _launch(root / f"n{n}", n) for n in (1, 2)}  # concurrently: startup dominates
    for n, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{n} process(es) failed:\n{out[-4000:]}"
    return root / "n1", root / "n2"


def _state(root: Path, name: str, mode: str, rank: int = 0) -> dict:
    return torch.load(root / "states" / f"{name}_{mode}_rank{rank}.pt")


def _ranks(name: str) -> tuple[int, ...]:
    """Ranks whose saved state is the whole model: under FSDP only rank 0 gathers the full
    weights (they include rank 1's shards, trained with rank 1's optimizer moments)."""
    return (0,) if name.endswith("fsdp") else (0, 1)


def _losses(run: Path) -> list[float]:
    return [json.loads(r)["loss"] for r in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_two_ranks_match_one_process_on_the_same_global_batch(runs, name):
    one, two = runs
    ref = _state(one, name, "straight")
    for rank in _ranks(name):
        got = _state(two, name, "straight", rank)
        for key, value in ref.items():
            torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5, msg=f"{name} rank {rank} {key}")
    a, b = _losses(one / name / "straight"), _losses(two / name / "straight")
    assert len(a) == len(b) == 4 and a[-1] < a[0]  # one row per step (rank 0 only), and it trained
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-5, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_an_interrupted_ddp_run_resumes_on_every_rank(runs, name):
    _, two = runs
    straight = _state(two, name, "straight")
    for rank in _ranks(name):  # rank 1 too: it reloaded its optimizer moments, not just rank 0's weights
        resumed = _state(two, name, "resume", rank)
        assert all(torch.equal(resumed[k], straight[k]) for k in straight), f"{name} rank {rank}"
    run = two / name / "resume"
    assert [json.loads(r)["step"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.slow
def test_only_rank_zero_writes(runs):
    _, two = runs
    assert not (two / "writes_rank1.txt").exists()
    calls = (two / "writes_rank0.txt").read_text().split()
    assert {"save_checkpoint", "save_pretrained", "save_yaml", "plot_metrics"} <= set(calls)


@pytest.mark.slow
def test_fsdp_shards_every_trained_parameter_and_exports_an_ordinary_model(runs):
    one, two = runs
    held = []
    for rank in (0, 1):
        shares = torch.load(two / "states" / f"tar-fsdp_straight_shares_rank{rank}.pt")
        local, full = (sum(x) for x in zip(*shares, strict=True))
        assert local <= 0.55 * full, f"rank {rank} holds {local} of {full} values"  # dim-0 halves
        held.append(local)
    assert sum(held) == full  # disjoint shards that cover every value
    from safetensors.torch import load_file

    ref = load_file(str(one / "tar" / "straight" / "model" / "model.safetensors"))
    got = load_file(str(two / "tar-fsdp" / "straight" / "model" / "model.safetensors"))
    assert set(ref) <= set(got)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-4, atol=1e-5, msg=key)
