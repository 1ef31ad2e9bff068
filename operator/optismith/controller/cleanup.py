"""What `helm uninstall` runs first (the chart's pre-delete hook Job): stop the operator, then take its
finalizer off every ModelOptimization, so that deleting them later (or their CRD, or their namespace) does
not hang waiting for an operator that is gone.

The operator is scaled to zero first and its pods waited for: a running kopf would put the finalizer back
on the next event. The resources themselves, their run directories and promotions are left alone.

    python -m optismith.controller.cleanup --namespace optismith-system --deployment optismith [-w ns ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from optismith import API_GROUP, API_VERSION
from optismith.controller.client import api_clients
from optismith.controller.crd import PLURAL

FINALIZER = "optismith.io/finalizer"  # controller/handlers.py configures kopf with it


def scale_down(apps: Any, core: Any, namespace: str, deployment: str, timeout: float) -> None:
    """Scale the operator's Deployment to zero and wait until its pods are gone."""
    try:
        found = apps.read_namespaced_deployment(deployment, namespace)
    except Exception as error:  # the client's ApiException: only controller/client.py imports kubernetes
        if getattr(error, "status", None) == 404:
            return  # already gone
        raise
    apps.patch_namespaced_deployment(deployment, namespace, {"spec": {"replicas": 0}})
    selector = ",".join(f"{k}={v}" for k, v in (found.spec.selector.match_labels or {}).items())
    deadline = time.monotonic() + timeout
    while core.list_namespaced_pod(namespace, label_selector=selector).items:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the operator's pods in {namespace} ({selector}) did not stop in {timeout:.0f}s")
        time.sleep(1)


def remove_finalizers(custom: Any, namespaces: Sequence[str]) -> list[str]:
    """Take the operator's finalizer off every ModelOptimization (of `namespaces`, or all); returns them."""
    listed = ([custom.list_namespaced_custom_object(API_GROUP, API_VERSION, ns, PLURAL) for ns in namespaces]
              if namespaces else [custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL)])
    released = []
    for page in listed:
        for item in page.get("items", []):
            metadata = item["metadata"]
            finalizers = metadata.get("finalizers") or []
            if FINALIZER not in finalizers:
                continue
            # A JSON patch that tests the list first: a concurrent change makes it fail instead of clobbering.
            patch = [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                     {"op": "replace", "path": "/metadata/finalizers",
                      "value": [f for f in finalizers if f != FINALIZER]}]
            custom.patch_namespaced_custom_object(API_GROUP, API_VERSION, metadata["namespace"], PLURAL,
                                                  metadata["name"], patch, _content_type="application/json-patch+json")
            released.append(f"{metadata['namespace']}/{metadata['name']}")
    return released


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True, help="the operator's namespace")
    parser.add_argument("--deployment", required=True, help="the operator's Deployment")
    parser.add_argument("-w", "--watch-namespace", action="append", default=[], help="served namespaces (default: all)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    apps, core, custom = api_clients()
    scale_down(apps, core, args.namespace, args.deployment, args.timeout)
    released = remove_finalizers(custom, args.watch_namespace)
    print(f"operator stopped; finalizer removed from {len(released)} ModelOptimization(s): "
          f"{', '.join(released) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
