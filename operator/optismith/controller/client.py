"""The only module that talks to the Kubernetes API directly (kopf's own watching aside).

The official client is synchronous: every call goes through a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

log = logging.getLogger("optismith.operator")


def load_config() -> None:
    # The client fixes its default kubeconfig path at import time, so pass the path explicitly.
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


def api_clients() -> tuple[Any, Any, Any]:
    """(AppsV1Api, CoreV1Api, CustomObjectsApi) for one-shot commands such as the uninstall cleanup."""
    load_config()
    client = kubernetes.client.ApiClient()
    return (kubernetes.client.AppsV1Api(client), kubernetes.client.CoreV1Api(client),
            kubernetes.client.CustomObjectsApi(client))


class KubeClient:
    def __init__(self) -> None:
        load_config()
        self._api_client = kubernetes.client.ApiClient()
        self._batch = kubernetes.client.BatchV1Api(self._api_client)
        self._core = kubernetes.client.CoreV1Api(self._api_client)

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The created Job; None if a Job of that name exists (an earlier operator run created it)."""
        try:
            created = await asyncio.to_thread(self._batch.create_namespaced_job, namespace, body)
        except ApiException as error:
            if error.status == 409:
                return None
            raise
        job: dict[str, Any] = self._api_client.sanitize_for_serialization(created)
        return job

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> None:
        """Creates a Secret (a Job's minted credentials); one that exists already is left as it is."""
        try:
            await asyncio.to_thread(self._core.create_namespaced_secret, namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(self._batch.delete_namespaced_job, name, namespace,
                                    propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    async def post_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the resource, like `kubectl describe` shows. Failures are logged, not raised:
        an event is worth less than the reconciliation that produced it."""
        metadata = body.get("metadata", {})
        now = dt.datetime.now(dt.UTC)
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name', 'mo')}.", "namespace": metadata.get("namespace")},
            "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                               "name": metadata.get("name"), "namespace": metadata.get("namespace"),
                               "uid": metadata.get("uid"), "resourceVersion": metadata.get("resourceVersion")},
            "type": type_, "reason": reason[:128], "message": message[:1024],
            "firstTimestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "lastTimestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "count": 1, "source": {"component": "optismith-operator"},
            "reportingComponent": "optismith.io/operator", "reportingInstance": os.environ.get("HOSTNAME", "optismith"),
        }
        try:
            await asyncio.to_thread(self._core.create_namespaced_event, metadata.get("namespace"), event)
        except ApiException as error:
            log.warning("could not post event %s: %s", reason, error.reason)

    def close(self) -> None:
        self._api_client.close()
