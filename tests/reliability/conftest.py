"""Fixtures of the reliability suites: the operator test cluster (from tests/operator) and the ledger.

Set OPTISMITH_RELIABILITY_LEDGER=<path> to get the ledger as JSON when the session ends; the figures in
docs/reliability.md are made from it by bench/reliability_figures.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_kit import LEDGER_ENV, CaseLedger, Ledger, operator_support

# The same cluster as the operator tests use: API server emulator, kubelet stand-in, kopf subprocess.
cluster = operator_support.cluster
shared_dir = operator_support.shared_dir


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
