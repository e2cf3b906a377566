"""Shared test fixtures: small, deterministic, CPU-only."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# ahead-of-time decoding steps keep their built libraries here, not in the user's cache
os.environ["DIALECT_AOT_CACHE"] = tempfile.mkdtemp(prefix="dialect-aot-tests-")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture()
def one_thread():
    """Micro models: intra-op threads are pure overhead, and on a busy machine spin-waiting
    threads made a step 50x slower (measured); restore the setting afterwards. Test packages of
    micro models use it for every test (their conftest)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
