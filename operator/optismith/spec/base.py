"""What every spec model shares: camelCase on the wire, strict types, and cross-field rules that carry
their CEL twin.

A cross-field rule is a pydantic model validator declared with `@cross_field(cel=..., message=...)`. The
CEL expression travels into the model's JSON schema as an `x-kubernetes-validations` rule, so the API
server refuses at `kubectl apply` what the model refuses in `optismith validate`, the CLI and the Jobs.
Both are written next to each other, here, and a test checks that no model validator lacks its twin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

CEL_ATTRIBUTE = "__cel_rule__"
VALIDATIONS_KEY = "x-kubernetes-validations"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CelRule:
    """An `x-kubernetes-validations` entry: `rule` is CEL over `self`, the object the model validates."""

    rule: str
    message: str
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def cross_field(*, cel: str, message: str, field_path: str | None = None) -> Callable[[F], Any]:
    """Declare an after-validator of a spec model together with the CEL rule that checks the same thing.

    The CEL sees the object after the API server applied the schema's defaults, as the validator sees the
    model after pydantic applied its own; `message` is what both report.
    """

    def decorate(function: F) -> Any:
        setattr(function, CEL_ATTRIBUTE, CelRule(cel, message, field_path))
        return model_validator(mode="after")(function)

    return decorate


def cel_rules(model: type[BaseModel]) -> list[CelRule]:
    """The CEL twins of a model's own cross-field validators, in declaration order."""
    rules = []
    for decorator in model.__pydantic_decorators__.model_validators.values():
        rule = getattr(decorator.func, CEL_ATTRIBUTE, None)
        if isinstance(rule, CelRule):
            rules.append(rule)
    return rules


def validators_without_cel(model: type[BaseModel]) -> list[str]:
    """Names of model validators with no CEL twin (a test keeps this empty for every spec model)."""
    return [name for name, decorator in model.__pydantic_decorators__.model_validators.items()
            if not isinstance(getattr(decorator.func, CEL_ATTRIBUTE, None), CelRule)]


def _add_cel_rules(schema: dict[str, Any], model: type[Any]) -> None:
    rules = cel_rules(model)
    if rules:
        schema[VALIDATIONS_KEY] = [rule.to_schema() for rule in rules]


class SpecModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors, not silently dropped.

    Strict types, like the CRD schema: "200" or true is not an integer, 1 is not a boolean. Lax coercion
    would let `optismith run` accept a manifest that `kubectl apply` rejects.
    """

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, validate_default=True, strict=True,
        json_schema_extra=_add_cel_rules,
    )
