"""Quantities read the way Kubernetes reads them: sizes and resources agree with kubernetes.utils.parse_quantity
on every string the pattern accepts, durations with CEL's duration() (Go's format), and integers are accepted
where Kubernetes users write them."""

from __future__ import annotations

import decimal
import re

import celpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as kubernetes_parse_quantity

from optismith.spec import parse_spec
from optismith.spec.quantities import (
    DURATION_MAX_LENGTH,
    DURATION_PATTERN,
    QUANTITY_MAX_LENGTH,
    QUANTITY_PATTERN,
    parse_duration,
    parse_quantity,
    seconds,
    size_bytes,
)

quantities = st.from_regex(QUANTITY_PATTERN, fullmatch=True).filter(lambda text: len(text) <= QUANTITY_MAX_LENGTH)
durations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 999), st.sampled_from(
    ["h", "m", "s", "ms", "us"])), min_size=1, max_size=4).map(
    lambda parts: "".join(f"{whole}.{fraction:03d}{unit}" if fraction else f"{whole}{unit}"
                          for whole, fraction, unit in parts)).filter(lambda text: len(text) <= DURATION_MAX_LENGTH)


@settings(max_examples=500, deadline=None)
@given(quantities)
def test_every_quantity_the_pattern_accepts_reads_as_kubernetes_reads_it(text: str) -> None:
    ours, theirs = parse_quantity(text), kubernetes_parse_quantity(text)
    assert abs(ours - theirs) <= abs(theirs) * decimal.Decimal("1e-25"), (text, ours, theirs)


@pytest.mark.parametrize(("text", "value"), [
    ("4Gi", 4 * 2**30), ("1.5Gi", 3 * 2**29), ("500M", 500_000_000), ("1e9", 10**9), ("2", 2), ("1Ti", 2**40),
    ("500m", 1), (".5Ki", 512), ("1E", 10**18), ("1E3", 1000), (1073741824, 2**30),
])
def test_size_bytes(text: str | int, value: int) -> None:
    assert size_bytes(text) == value  # a fraction of a byte rounds up, like Quantity.Value()


@pytest.mark.parametrize("text", ["", "1K", "1ki", "1 Gi", "-1", "+1", "1e1.5", "1.2.3", "NaN", "Infinity", "0x10",
                                  "1_000", "١٢٣", "1" * 33])
def test_what_kubernetes_does_not_write_is_no_quantity(text: str) -> None:
    assert not re.fullmatch(QUANTITY_PATTERN[1:-1], text) or len(text) > QUANTITY_MAX_LENGTH
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


@settings(max_examples=300, deadline=None)
@given(durations)
def test_every_duration_reads_as_cel_and_go_read_it(text: str) -> None:
    assert re.fullmatch(DURATION_PATTERN[1:-1], text)
    environment = celpy.Environment()
    program = environment.program(environment.compile(f"duration('{text}')"))
    expected = program.evaluate({}).total_seconds()
    assert abs(float(parse_duration(text)) - expected) <= 1e-6 * max(1.0, expected), text


@pytest.mark.parametrize(("text", "value"), [
    ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("0.5ms", 0.0005), ("2h45m30s", 9930), ("1m30s", 90),
    ("300ms", 0.3), ("10ns", 1e-8), ("168h", 604800), ("30m1h", 5400),
])
def test_go_durations(text: str, value: float) -> None:
    assert seconds(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["90", "0", "1d", "1w", "1H", "-1s", "1.s", ".5s", "1h 30m", "1h\n", "9" * 40 + "h"])
def test_what_go_or_the_pattern_refuses_is_no_duration(text: str) -> None:
    assert not re.fullmatch(DURATION_PATTERN[1:-1], text) or len(text) > DURATION_MAX_LENGTH
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_integers_where_kubernetes_users_write_them_and_never_floats() -> None:
    base = {"model": {"uri": "m"}, "output": {"uri": "o"}}
    spec = parse_spec({**base, "limits": {"maxModelSize": 2**30},
                       "targets": [{"name": "cpu", "resources": {"requests": {"cpu": 2}, "limits": {"cpu": "500m"}}}]})
    assert spec.limits.max_model_size == "1073741824" and size_bytes(spec.limits.max_model_size) == 2**30
    assert spec.targets[0].resources.requests == {"cpu": "2"}
    for bad in ({"limits": {"maxModelSize": 1.5}}, {"limits": {"maxModelSize": True}},
                {"targets": [{"name": "cpu", "resources": {"requests": {"cpu": 0.5}}}]}):
        with pytest.raises(Exception, match="valid string"):
            parse_spec({**base, **bad})
