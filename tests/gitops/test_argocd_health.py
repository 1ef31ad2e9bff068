"""The Argo CD health check of ModelOptimization, run the way Argo CD runs custom health scripts.

Argo CD (util/lua/lua.go) executes `health.lua` in gopher-lua — Lua 5.1 — with only the package,
base, table and a reduced os library opened (custom scripts get no string library), the resource as
the global `obj`, and reads the returned table's `status` and `message`. We emulate that with lupa's
Lua 5.1: a restricted environment, no string metatable, and `obj` converted from the YAML.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

from optismith.controller.planner import Decision
from optismith.controller.status import build_status, invalid_spec_status
from optismith.results import PromotionOutcome
from tests.controller.controller_results import RESULTS, run_results

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "charts/optismith/files/argocd/resource_customizations/optismith.io/ModelOptimization"
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# What gopher-lua's base/table/os(safe) libraries give a script: no string, math, io or debug.
SANDBOX = """
local source, object = ...
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall, select = select,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  rawequal = rawequal, rawget = rawget, rawset = rawset, getmetatable = getmetatable,
  setmetatable = setmetatable, table = table,
  os = {time = os.time, date = os.date, clock = os.clock, difftime = os.difftime},
  obj = object,
}
local chunk, problem = loadstring(source, "health.lua")
if chunk == nil then error(problem) end
setfenv(chunk, env)
debug.setmetatable("", nil)
return chunk()
"""


def _to_lua(runtime: Any, value: Any) -> Any:
    # Like Argo CD's decodeValue: maps and lists become tables (lists 1-based), nulls disappear.
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value if v is not None])
    return value


def run_health(obj: dict[str, Any]) -> dict[str, Any]:
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    result = runtime.execute(SANDBOX, (CHECK / "health.lua").read_text(), _to_lua(runtime, obj))
    assert lua51.lua_type(result) == "table", f"health.lua returned {result!r}, Argo CD needs a table"
    return {str(k): result[k] for k in result}


def _cases() -> list[dict[str, Any]]:
    return list(yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"])


@pytest.mark.parametrize("case", _cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_health_test_yaml_cases(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert run_health(obj) == {"status": case["healthStatus"]["status"], "message": case["healthStatus"]["message"]}


def test_every_testdata_file_is_a_case_and_every_status_is_covered() -> None:
    cases = _cases()
    used = {case["inputPath"] for case in cases}
    assert used == {f"testdata/{p.name}" for p in (CHECK / "testdata").glob("*.yaml")}
    statuses = {case["healthStatus"]["status"] for case in cases}
    assert statuses == {"Healthy", "Progressing", "Degraded"}
    assert statuses <= HEALTH_STATUSES


def test_script_uses_no_string_library() -> None:
    # Argo CD's custom health scripts run without it: string.* or s:method() would fail at runtime there.
    source = (CHECK / "health.lua").read_text()
    code = re.sub(r'"[^"\n]*"', '""', source)  # string literals may contain anything
    code = "\n".join(line.split("--")[0] for line in code.splitlines())
    assert "string." not in code
    assert ":" not in code, "method-call syntax needs the string library on strings"


def test_sandbox_rejects_string_methods() -> None:
    # The emulation must be at least as strict as Argo CD, or the test above proves nothing.
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    with pytest.raises(lua51.LuaError):
        runtime.execute(SANDBOX, 'return {status = ("x"):upper()}', runtime.table())
    with pytest.raises(lua51.LuaError):
        runtime.execute(SANDBOX, 'return {status = string.upper("x")}', runtime.table())


T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
SELECTED = run_results({
    **RESULTS["selection"],
    "winner": "onnx-int8",
    "message": "onnx-int8 is 2.50x faster",
    "candidates": [{**RESULTS["selection"]["candidates"][0], "variant": "onnx-int8"}],
})
NO_WINNER = run_results({
    **RESULTS["selection"],
    "winner": None,
    "winner_target": None,
    "outcome": "no-variant-passed",
    "message": "no variant passed: drop above 1%",
})


def _resource(status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "optismith.io/v1alpha1",
        "kind": "ModelOptimization",
        "metadata": {"name": "m", "namespace": "ns", "generation": generation},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (build_status({}, Decision("Queued", "Queued", "waiting for a free Job slot"), 1, "u", T0), "Progressing"),
        (build_status({}, Decision("Running", "Running", "1/4 steps done"), 1, "u", T0), "Progressing"),
        (build_status({}, Decision("Retrying", "Backoff", "retrying after backoff"), 1, "u", T0), "Progressing"),
        (build_status({}, Decision("Succeeded", "Completed", "ok"), 1, "u", T0, SELECTED), "Healthy"),
        (
            build_status(
                {},
                Decision("Succeeded", "Completed", "ok"),
                1,
                "u",
                T0,
                SELECTED,
                PromotionOutcome(promoted=True, uri="s3://p", variant="onnx-int8"),
                promotion_configured=True,
            ),
            "Healthy",
        ),
        (
            build_status(
                {},
                Decision("Succeeded", "Completed", "ok"),
                1,
                "u",
                T0,
                SELECTED,
                PromotionOutcome(promoted=False, reason="denied"),
                promotion_configured=True,
            ),
            "Degraded",
        ),
        (build_status({}, Decision("Succeeded", "Completed", "ok"), 1, "u", T0, NO_WINNER), "Degraded"),
        (build_status({}, Decision("Failed", "DeadlineExceeded", "prepare ran too long"), 1, "u", T0), "Degraded"),
        (invalid_spec_status({}, 1, "bad spec", T0), "Degraded"),
    ],
    ids=[
        "queued",
        "running",
        "retrying",
        "selected",
        "promoted",
        "promotion-failed",
        "no-winner",
        "failed",
        "invalid-spec",
    ],
)
def test_statuses_the_operator_writes_today(status: dict[str, Any], expected: str) -> None:
    # Guards against drift: the statuses come from optismith.controller.status, not from fixtures.
    assert run_health(_resource(status))["status"] == expected
    assert run_health(_resource(status, generation=2))["status"] == "Progressing"


def test_degraded_message_names_the_cause() -> None:
    failed = build_status({}, Decision("Failed", "DeadlineExceeded", "prepare ran too long"), 1, "u", T0)
    assert run_health(_resource(failed))["message"] == "DeadlineExceeded: prepare ran too long"
