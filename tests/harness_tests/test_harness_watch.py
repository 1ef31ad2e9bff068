"""Watch semantics: resumption by resourceVersion, no lost events, selector transitions, 410."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import ApiServer
from tests.harness_tests.harness_samples import WIDGETS, widget, widget_crd

pytestmark = pytest.mark.timeout(60)

PATH = WIDGETS.format(ns="default")


@pytest.fixture
def api(k8s_api: ApiServer) -> ApiServer:
    k8s_api.register_crd(widget_crd())
    return k8s_api


def take(stream: Iterator[dict[str, Any]], n: int) -> list[tuple[str, str]]:
    events = []
    for event in stream:
        events.append((event["type"], event["object"]["metadata"].get("name", "")))
        if len(events) == n:
            break
    return events


def test_watch_from_list_resource_version_sees_later_changes(api: ApiServer) -> None:
    api.client.create(PATH, widget("before"))
    rv = api.client.get(PATH)["metadata"]["resourceVersion"]
    api.client.create(PATH, widget("after"))
    api.client.patch(f"{PATH}/before", {"spec": {"x": 1}})
    api.client.delete(f"{PATH}/after")
    events = take(api.client.stream(PATH, resourceVersion=rv), 3)
    assert events == [("ADDED", "after"), ("MODIFIED", "before"), ("DELETED", "after")]


def test_watch_without_resource_version_starts_with_the_current_state(api: ApiServer) -> None:
    api.client.create(PATH, widget("a"))
    api.client.create(PATH, widget("b"))
    stream = api.client.stream(PATH)
    assert take(stream, 2) == [("ADDED", "a"), ("ADDED", "b")]
    api.client.create(PATH, widget("c"))
    assert take(stream, 1) == [("ADDED", "c")]


def test_no_event_is_lost_while_a_watch_starts_under_load(api: ApiServer) -> None:
    total = 150
    half_done = threading.Event()

    def writer() -> None:
        for i in range(total):
            api.client.create(PATH, widget(f"w{i:03}"))
            if i == total // 2:
                half_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    half_done.wait(10)
    seen = {name for kind, name in take(api.client.stream(PATH), total) if kind == "ADDED"}
    thread.join()
    assert seen == {f"w{i:03}" for i in range(total)}


def test_selector_transitions_become_added_and_deleted(api: ApiServer) -> None:
    rv = api.client.create(PATH, {"metadata": {"name": "w", "labels": {"app": "no"}}})["metadata"]["resourceVersion"]
    api.client.patch(f"{PATH}/w", {"metadata": {"labels": {"app": "yes"}}})
    api.client.patch(f"{PATH}/w", {"metadata": {"labels": {"app": "yes", "more": "1"}}})
    api.client.patch(f"{PATH}/w", {"metadata": {"labels": {"app": "no"}}})
    events = take(api.client.stream(PATH, resourceVersion=rv, labelSelector="app=yes"), 3)
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_field_selector_on_name_for_kubectl_wait(api: ApiServer) -> None:
    rv = api.client.create(PATH, widget("a"))["metadata"]["resourceVersion"]
    api.client.patch(f"{PATH}/a", {"spec": {"x": 1}})
    api.client.create(PATH, widget("b"))
    api.client.patch(f"{PATH}/b", {"spec": {"x": 1}})
    events = take(api.client.stream(PATH, resourceVersion=rv, fieldSelector="metadata.name=b"), 2)
    assert events == [("ADDED", "b"), ("MODIFIED", "b")]


def test_expired_resource_version_is_410_gone_in_the_stream() -> None:
    with ApiServer(event_window=5) as api:
        api.register_crd(widget_crd())
        rv = api.client.create(PATH, widget("first"))["metadata"]["resourceVersion"]
        for i in range(10):
            api.client.create(PATH, widget(f"w{i}"))
        events = list(api.client.stream(PATH, resourceVersion=rv))
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_initial_events_end_with_a_bookmark_and_timeouts_end_streams(api: ApiServer) -> None:
    api.client.create(PATH, widget("a"))
    events = list(
        api.client.stream(
            PATH,
            sendInitialEvents="true",
            resourceVersionMatch="NotOlderThan",
            allowWatchBookmarks="true",
            timeoutSeconds="1",
        )
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    bookmark = events[1]["object"]
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bookmark["kind"] == "Widget" and int(bookmark["metadata"]["resourceVersion"]) >= 1


def test_idle_watches_get_bookmarks_when_allowed() -> None:
    with ApiServer(bookmark_interval=0.2) as api:
        api.register_crd(widget_crd())
        events = list(api.client.stream(PATH, allowWatchBookmarks="true", timeoutSeconds="1"))
        assert events and {e["type"] for e in events} == {"BOOKMARK"}
        quiet = list(api.client.stream(PATH, timeoutSeconds="1"))
        assert quiet == []
