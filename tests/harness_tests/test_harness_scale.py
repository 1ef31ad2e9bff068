"""The emulator stays fast with many objects and requests (kmock 0.8 alone degrades quadratically)."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from tests.harness import ApiServer
from tests.harness_tests.harness_samples import widget, widget_crd

pytestmark = pytest.mark.timeout(60)

COUNT = 1000
PATH = "/apis/example.io/v1/namespaces/default/widgets"


def test_a_thousand_objects_without_slowdown(k8s_api: ApiServer) -> None:
    k8s_api.register_crd(widget_crd())
    stop = threading.Event()
    watched: list[dict[str, object]] = []

    def watch() -> None:  # a live watcher, as an operator would keep one, must not slow writes down
        for event in k8s_api.client.stream(PATH, timeout=60):
            watched.append(event)
            if stop.is_set() or len(watched) >= COUNT:
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    connection = http.client.HTTPConnection("127.0.0.1", k8s_api.port, timeout=10)  # keep-alive, like clients
    durations = []
    started = time.monotonic()
    for i in range(COUNT):
        body = json.dumps(widget(f"w{i:04}", size=i))
        t0 = time.perf_counter()
        connection.request("POST", PATH, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        durations.append(time.perf_counter() - t0)
        assert response.status == 201
    connection.request("GET", PATH)
    listing = json.loads(connection.getresponse().read())
    elapsed = time.monotonic() - started
    connection.close()

    assert len(listing["items"]) == COUNT
    assert elapsed < 15, elapsed
    first, last = sum(durations[:100]), sum(durations[-100:])
    assert last / first < 3, (first, last)
    watcher.join(10)
    stop.set()
    assert len(watched) == COUNT
    assert len(k8s_api.history) >= COUNT + 1
