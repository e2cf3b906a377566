"""The web demo's tests share one load of the shipped model (the demo's default) and run it on
one intra-op thread (see `one_thread` in tests/conftest.py: on a busy machine a second spinning
thread made the de-tokenizer calls here ~10x slower, measured)."""

import pytest

from dialect.unified.pipeline import Dialect


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="session")
def shipped():
    return Dialect.from_pretrained()
