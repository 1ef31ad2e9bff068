"""`optismith operator`: run the kopf operator (what the operator image's entrypoint calls)."""

from __future__ import annotations

import asyncio
import os


def run_operator(namespaces: list[str], all_namespaces: bool, liveness: str | None, metrics_port: int) -> None:
    os.environ.setdefault("OPTISMITH_METRICS_PORT", str(metrics_port))
    import kopf

    from optismith.controller import handlers  # noqa: F401 - registers the handlers

    asyncio.run(kopf.operator(
        standalone=True,
        clusterwide=all_namespaces or not namespaces,
        namespaces=namespaces or (),
        liveness_endpoint=liveness or None,
    ))
