import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs micro models: one intra-op thread (see tests/conftest.py)."""
    yield
