"""
Label and field selectors, with the syntax and semantics of the real API server.

Labels: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``.
Fields: ``metadata.name``, ``metadata.namespace``, ``status.phase``, ``spec.nodeName``,
``involvedObject.*`` and a few more, with ``=``, ``==`` and ``!=``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ApiError

# Field paths a real server supports on (nearly) all or on common resources.
_FIELD_GETTERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name"),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace"),
    "status.phase": lambda o: (o.get("status") or {}).get("phase"),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName"),
    "spec.restartPolicy": lambda o: (o.get("spec") or {}).get("restartPolicy"),
    "type": lambda o: o.get("type"),
    "reason": lambda o: o.get("reason"),
    "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind"),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name"),
    "involvedObject.namespace": lambda o: (o.get("involvedObject") or {}).get("namespace"),
    "involvedObject.uid": lambda o: (o.get("involvedObject") or {}).get("uid"),
    "regarding.name": lambda o: (o.get("regarding") or {}).get("name"),
    "regarding.kind": lambda o: (o.get("regarding") or {}).get("kind"),
}

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # '=', '!=', 'in', 'notin', 'exists', '!'
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value in self.values
        if self.op == "!=":
            return not present or value not in self.values
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # '!'


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` value lists."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls()
        reqs: list[Requirement] = []
        for part in _split_top_level(text):
            if m := _SET_RE.match(part):
                values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                reqs.append(Requirement(m.group(1), m.group(2), values))
            elif m := _EQ_RE.match(part):
                op = "!=" if m.group(2) == "!=" else "="
                reqs.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
            elif m := _EXISTS_RE.match(part):
                reqs.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
            else:
                raise ApiError(400, f"unable to parse requirement: {part!r}")
        return cls(tuple(reqs))

    @classmethod
    def from_match(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """From a structured ``metav1.LabelSelector`` (matchLabels + matchExpressions)."""
        reqs: list[Requirement] = []
        for key, value in ((selector or {}).get("matchLabels") or {}).items():
            reqs.append(Requirement(key, "=", frozenset({value})))
        ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
        for expr in (selector or {}).get("matchExpressions") or []:
            reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or ())))
        return cls(tuple(reqs))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req.matches(labels) for req in self.requirements)


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, str, str], ...] = ()  # (field, op, value)

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        if not text:
            return cls()
        terms: list[tuple[str, str, str]] = []
        for part in _split_top_level(text):
            m = _EQ_RE.match(part)
            if not m:
                raise ApiError(400, f"invalid field selector: {part!r}")
            field, op, value = m.group(1), m.group(2), m.group(3)
            if field not in _FIELD_GETTERS:
                raise ApiError(400, f"field label not supported: {field}")
            terms.append((field, "!=" if op == "!=" else "=", value))
        return cls(tuple(terms))

    @property
    def name(self) -> str | None:
        """The exact name this selector pins, if any: lets lookups skip scanning all objects."""
        for field, op, value in self.terms:
            if field == "metadata.name" and op == "=":
                return value
        return None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for field, op, value in self.terms:
            actual = _FIELD_GETTERS[field](obj)
            actual_str = "" if actual is None else str(actual)
            if (actual_str == value) != (op == "="):
                return False
        return True


@dataclasses.dataclass(frozen=True)
class ObjectFilter:
    """Everything that narrows a list or a watch: namespace, name, and both selectors."""

    namespace: str | None = None
    name: str | None = None
    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)
