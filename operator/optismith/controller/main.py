"""`optismith operator`: run the kopf operator (what the operator image's entrypoint calls)."""

from __future__ import annotations

import asyncio

from optismith.controller.settings import OperatorSettings


def run_operator(settings: OperatorSettings) -> None:
    import kopf

    from optismith.controller.handlers import register_handlers
    from optismith.controller.metrics import OperatorMetrics

    kopf.configure(verbose=settings.verbose)
    registry = kopf.OperatorRegistry()
    register_handlers(registry, settings, OperatorMetrics())
    asyncio.run(kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness or None,
    ))
