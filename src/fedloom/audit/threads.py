"""Torch on one thread while an attack trains or optimizes: the audit's models are tiny, and on a shared
machine two threads per small matrix product can be 50 times slower (measured: 19 s against 0.4 s)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["one_thread"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(1)``; restore the previous count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
