"""
A Kubernetes test harness: an API server emulator (on kmock), a kubelet stand-in, kopf runners.

See ``fixtures.py`` for the pytest fixtures and each module's docstring for the details.
"""

from .apiserver import KubernetesApiEmulator
from .client import ApiStatusError, AsyncClient, SyncClient, resource_path
from .faults import Fault, FaultInjector
from .history import RequestHistory, RequestRecord
from .kopf_login import connection_info, login_handler, login_via_harness
from .kopf_runner import KopfProcess, KopfThread, wait_for_watch
from .kubelet import Kubelet, PodRun
from .resources import ResourceSpec, specs_from_crd
from .serving import ApiServer
from .waiting import eventually, process_alive

__all__ = [
    "ApiServer",
    "ApiStatusError",
    "AsyncClient",
    "Fault",
    "FaultInjector",
    "KopfProcess",
    "KopfThread",
    "Kubelet",
    "KubernetesApiEmulator",
    "PodRun",
    "RequestHistory",
    "RequestRecord",
    "ResourceSpec",
    "SyncClient",
    "connection_info",
    "eventually",
    "login_handler",
    "login_via_harness",
    "process_alive",
    "resource_path",
    "specs_from_crd",
    "wait_for_watch",
]
