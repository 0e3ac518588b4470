"""Fixtures shared by the runtime tests."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensors: on a busy 2-core machine, thread hand-offs cost more than the arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
