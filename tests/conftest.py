"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small convolutions run fastest, and steadiest on a busy machine, on one thread; the
    suite's thread count is restored after the module."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
