"""Fixtures of the reliability suites: the operator test cluster (from tests/operator) and the ledger.

Set OPTISMITH_RELIABILITY_LEDGER=<path> to get the ledger as JSON when the session ends; the figures in
docs/reliability.md are made from it by bench/reliability_figures.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The same cluster as the operator tests use: API server emulator, kubelet stand-in, the operator process.
from tests.operator.conftest import cluster, shared_dir
from tests.reliability.reliability_kit import LEDGER_ENV, CaseLedger, Ledger

__all__ = ["cluster", "ledger", "session_ledger", "shared_dir"]


@pytest.fixture(scope="session")
def session_ledger() -> Iterator[Ledger]:
    ledger = Ledger()
    yield ledger
    target = os.environ.get(LEDGER_ENV)
    if target:
        ledger.write(Path(target))


@pytest.fixture
def ledger(session_ledger: Ledger, request: pytest.FixtureRequest) -> CaseLedger:
    return CaseLedger(session_ledger, request.node.nodeid)
