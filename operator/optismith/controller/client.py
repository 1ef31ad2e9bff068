"""The only module that talks to the Kubernetes API directly (kopf's own watching aside).

The official client is synchronous: every call goes through a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException


def load_config() -> None:
    # The client fixes its default kubeconfig path at import time, so pass the path explicitly.
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


class KubeClient:
    def __init__(self) -> None:
        load_config()
        self._api_client = kubernetes.client.ApiClient()
        self._batch = kubernetes.client.BatchV1Api(self._api_client)

    async def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        """True if created; False if a Job of that name exists (an earlier operator run created it)."""
        try:
            await asyncio.to_thread(self._batch.create_namespaced_job, namespace, body)
            return True
        except ApiException as error:
            if error.status == 409:
                return False
            raise

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(self._batch.delete_namespaced_job, name, namespace,
                                    propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    def close(self) -> None:
        self._api_client.close()
