"""Fixtures for fedloom.net tests: credentials and an in-process server harness."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from net_helpers import Harness

from fedloom.net import create_credentials


@pytest.fixture(scope="session")
def creds(tmp_path_factory) -> Path:
    return create_credentials(tmp_path_factory.mktemp("creds"), clients=["0", "1", "2", "revoked"],
                              hosts=["fl.example.org", "10.0.0.7"])


@pytest.fixture
def harness(creds) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**kwargs) -> Harness:
        h = Harness(creds, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
