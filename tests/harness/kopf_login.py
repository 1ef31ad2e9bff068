"""
Kopf login against the emulator, from an explicit kubeconfig path or URL.

The ``kubernetes`` client fixes its kubeconfig location at import time, so kopf's
default login cannot follow a per-test server. These helpers read the target at
login time instead:

* ``login_handler(path_or_url)`` — a function for ``kopf.on.login(registry=...)``.
* ``login_via_harness`` — one shared handler that reads ``KUBECONFIG_VAR`` (set by the
  thread runner for its operator only) or the ``HARNESS_KUBECONFIG`` env var (subprocesses).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import kopf
import yaml

KUBECONFIG_VAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("harness_kubeconfig", default=None)
ENV_VAR = "HARNESS_KUBECONFIG"


def connection_info(target: str | os.PathLike[str], *, priority: int = 0) -> kopf.ConnectionInfo:
    """A ``kopf.ConnectionInfo`` from a kubeconfig file (its current context) or a plain URL."""
    text = str(target)
    if text.startswith(("http://", "https://")):
        return kopf.ConnectionInfo(server=text, insecure=True, default_namespace="default", priority=priority)
    config = yaml.safe_load(Path(text).read_text()) or {}
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    context = contexts[config["current-context"]]
    cluster = clusters[context["cluster"]]
    user = users.get(context.get("user", ""), {})
    return kopf.ConnectionInfo(
        server=cluster["server"],
        insecure=bool(cluster.get("insecure-skip-tls-verify")) or cluster["server"].startswith("http://"),
        scheme="Bearer" if user.get("token") else None,
        token=user.get("token"),
        default_namespace=context.get("namespace") or "default",
        priority=priority,
    )


def login_handler(target: str | os.PathLike[str]) -> Callable[..., Awaitable[kopf.ConnectionInfo]]:
    """A login function bound to one server: ``kopf.on.login(registry=r)(login_handler(path))``."""

    async def login_to_emulator(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(target)

    return login_to_emulator


async def login_via_harness(**_: Any) -> kopf.ConnectionInfo | None:
    target = KUBECONFIG_VAR.get() or os.environ.get(ENV_VAR)
    # A high priority: if the operator has its own login handlers, the test cluster still wins.
    return None if target is None else connection_info(target, priority=100)
