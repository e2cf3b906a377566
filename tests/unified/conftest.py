import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Micro models: intra-op threads are pure overhead, and on a busy machine spin-waiting
    threads made a step 50x slower (measured); restore the setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
