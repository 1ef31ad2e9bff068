"""The operator's settings: one object from flags, the environment and the defaults, flags first."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from optismith.cli import build_parser
from optismith.controller.settings import OperatorSettings


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTISMITH_METRICS_PORT", "9100")
    monkeypatch.setenv("OPTISMITH_MAX_JOBS", "7")
    assert OperatorSettings.from_flags(metrics_port=None).metrics_port == 9100  # an unset flag leaves the env
    settings = OperatorSettings.from_flags(metrics_port=9200)
    assert settings.metrics_port == 9200 and settings.max_jobs == 7


def test_unset_cli_flags_leave_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTISMITH_METRICS_PORT", "9100")
    args = build_parser().parse_args(["operator", "-n", "ml"])
    settings = OperatorSettings.from_flags(namespaces=args.namespace, liveness=args.liveness,
                                           metrics_port=args.metrics_port)
    assert settings.metrics_port == 9100 and settings.namespaces == ["ml"]
    args = build_parser().parse_args(["operator", "--metrics-port", "9300"])
    assert OperatorSettings.from_flags(metrics_port=args.metrics_port).metrics_port == 9300


def test_structured_settings_are_json_and_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTISMITH_WORKER_COMMAND", '["python", "-m", "optismith.cli"]')
    monkeypatch.setenv("OPTISMITH_WORKER_EXTRA_ENV", '{"A": "1"}')
    worker = OperatorSettings().worker()
    assert worker.command == ("python", "-m", "optismith.cli") and dict(worker.extra_env) == {"A": "1"}
    monkeypatch.setenv("OPTISMITH_MAX_JOBS", "0")
    with pytest.raises(ValidationError, match="max_jobs"):
        OperatorSettings()
