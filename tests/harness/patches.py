"""
The three PATCH flavours of the API server, applied to plain JSON-like dicts.

* ``application/merge-patch+json`` — RFC 7386 (``null`` deletes keys, lists are replaced).
* ``application/strategic-merge-patch+json`` — treated as a merge patch: lists are
  replaced, not merged by keys; ``$patch``/``$retainKeys`` directives are dropped.
* ``application/json-patch+json`` — RFC 6902, including ``test`` (whose failure is a 422).
* ``application/apply-patch+yaml`` — server-side apply, approximated as a merge patch
  without field ownership (conflicts are never reported).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from .errors import ApiError

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
SUPPORTED = (MERGE, STRATEGIC, JSON_PATCH, APPLY)


class PatchTestFailed(ApiError):
    def __init__(self, path: str) -> None:
        super().__init__(
            422,
            f"the server rejected our request due to an error in our request: testing value {path} failed",
        )


def decode_patch(content_type: str, body: bytes) -> Any:
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in SUPPORTED:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: {', '.join(SUPPORTED)}",
        )
    try:
        return yaml.safe_load(body) if media == APPLY else json.loads(body or b"null")
    except (ValueError, yaml.YAMLError) as e:
        raise ApiError(400, f"error decoding patch: {e}") from e


def apply_patch(content_type: str, obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise ApiError(400, "json patch must be a list of operations")
        return json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "merge patch must be a JSON object")
    if media == STRATEGIC:
        patch = _strip_directives(patch)
    result = merge_patch(obj, patch)
    assert isinstance(result, dict)
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386. Returns a new structure; the inputs are not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strip_directives(patch: Any) -> Any:
    if isinstance(patch, dict):
        return {k: _strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [_strip_directives(v) for v in patch]
    return patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer: {pointer!r}")
    return [_unescape(token) for token in pointer[1:].split("/")]


def _resolve_parent(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, str]:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ApiError(
                422,
                f"the server rejected our request due to an error in our request: path {pointer} does not exist",
            )
    return node, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _split_pointer(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ApiError(
                422,
                f"the server rejected our request due to an error in our request: path {pointer} does not exist",
            )
    return node


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _split_pointer(pointer)
    if not tokens:
        return value
    parent, key = _resolve_parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        if key == "-":
            parent.append(value)
        elif key.isdigit() and int(key) <= len(parent):
            parent.insert(int(key), value)
        else:
            raise ApiError(422, f"index out of range in {pointer}")
    else:
        raise ApiError(422, f"cannot add to a scalar at {pointer}")
    return doc


def _remove(doc: Any, pointer: str) -> Any:
    tokens = _split_pointer(pointer)
    parent, key = _resolve_parent(doc, tokens, pointer)
    if isinstance(parent, dict) and key in parent:
        del parent[key]
    elif isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        del parent[int(key)]
    else:
        raise ApiError(
            422,
            f"the server rejected our request due to an error in our request: "
            f"unable to remove nonexistent key: {pointer}",
        )
    return doc


def json_patch(obj: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902. Atomic: a failing operation leaves the original object intact."""
    doc: Any = copy.deepcopy(obj)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchTestFailed(path)
        elif kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            doc = _remove(doc, path) if _split_pointer(path) else doc
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        else:
            raise ApiError(400, f"unknown JSON patch operation: {kind!r}")
    if not isinstance(doc, dict):
        raise ApiError(422, "json patch must result in an object")
    return doc
