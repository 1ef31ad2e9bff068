"""The reviewed op lists against the running TensorFlow's registry: every op that is stateful, or stateless with
arguments named like files, URLs or graphs, is allowed, gated or refused by name; no op is new since the review;
and no listed name is misspelt. A TensorFlow upgrade that adds an op fails here until someone classifies it."""

from __future__ import annotations

from typing import Any

import pytest

from optismith.models.policy import ops
from optismith.models.policy.classify import classify, counts, registry, unsettled
from optismith.models.policy.reviewed import REVIEWED_OPS, TENSORFLOW_VERSION
from tests.models.policy.snapshot import render

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def registered() -> dict[str, Any]:
    return registry()


@pytest.mark.parametrize("check", [
    "stateful ops on no list",
    "stateless ops with file-like arguments nobody reviewed",
    "ops new since the reviewed registry",
    "reviewed ops this TensorFlow no longer has",
    "listed names this TensorFlow does not have",
])
def test_the_registry_holds_nothing_unreviewed(registered: dict[str, Any], check: str) -> None:
    found = unsettled(registered)[check]
    assert found == [], (
        f"{check}: {found}. Classify each in optismith/models/policy/ops.py, then run "
        "`python -m tests.models.policy.snapshot`"
    )


def test_the_reviewed_registry_is_this_tensorflow() -> None:
    import tensorflow as tf

    assert tf.__version__ == TENSORFLOW_VERSION


def test_every_op_gets_a_verdict_and_the_dangerous_ones_are_refused(registered: dict[str, Any]) -> None:
    tally = counts(registered)
    assert sum(tally.values()) == len(registered) == len(REVIEWED_OPS)
    refused = {name for name, op in registered.items() if classify(name, op).klass == "refused"}
    for name in ("ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset", "DataServiceDatasetV4",
                 "RegisterDatasetV2", "DistributedSave", "GenerateVocabRemapping", "RecordInput", "Skipgram",
                 "Abort", "DatasetFromGraph", "PyFunc", "ImmutableConst", "XlaCallModule", "_HostSend"):
        assert name in refused, name
    print("op policy classes:", tally)  # the figures in docs/security.md


def test_only_embedded_programs_and_structure_cannot_be_allowed() -> None:
    fixed = {category.name for category in ops.REFUSED.values() if not category.allowable}
    assert fixed == {"embedded programs"}
    assert not ops.STRUCTURE.allowable and ops.FILES.allowable


def test_a_new_op_is_refused_until_reviewed(registered: dict[str, Any]) -> None:
    """Strict mode: an op the reviewed registry lacks is refused, stateless and innocently named or not."""
    harmless = registered["Add"]
    assert classify("Add", harmless).klass == "allowed"
    assert classify("Add", harmless, reviewed=REVIEWED_OPS - {"Add"}).klass == "refused"
    assert classify("NoSuchOp", None).klass == "refused"


def test_the_snapshot_renders_what_is_checked_in(registered: dict[str, Any]) -> None:
    from optismith.models.policy import reviewed

    assert render(list(registered), TENSORFLOW_VERSION) == open(reviewed.__file__).read()
