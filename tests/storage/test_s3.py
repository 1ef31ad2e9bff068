"""S3Storage against a real SeaweedFS: the shared contract, error translation, atomicity and outages."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optismith.errors import StorageAuthError, StorageError
from optismith.storage import open_storage
from optismith.storage.s3 import S3Settings, S3Storage
from tests.fixtures.seaweedfs import SeaweedFS
from tests.storage.storage_contract import StorageContract, assert_names

MiB = 1 << 20


@pytest.fixture(scope="module")
def shared_bucket(s3_server: SeaweedFS) -> str:
    # A bucket's first write costs SeaweedFS ~0.2 s (it grows a volume); most tests share one bucket.
    return s3_server.make_bucket(f"t-shared-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(s3_env: SeaweedFS, shared_bucket: str) -> S3Storage:
    """An empty store: a fresh prefix in the shared bucket."""
    opened = open_storage(f"s3://{shared_bucket}/{uuid.uuid4().hex[:12]}/runs/r1")
    assert isinstance(opened, S3Storage)
    return opened


def _file(path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, data


def _every_operation(store: S3Storage, tmp_path: Path) -> dict[str, Callable[[], object]]:
    source, _ = _file(tmp_path / "upload.bin", 1000)
    return {
        "read": lambda: store.read_bytes("stages/a.json"),
        "write": lambda: store.write_bytes("stages/b.json", b"{}"),
        "upload": lambda: store.upload_file("upload.bin", source),
        "download": lambda: store.download_file("stages/a.json", tmp_path / "dl" / "a.json"),
        "exists": lambda: store.exists("stages/a.json"),
        "list": lambda: store.list("stages"),
        "size": lambda: store.size("stages/a.json"),
        "delete": lambda: store.delete("stages/a.json"),
    }


@pytest.mark.s3
class TestS3Contract(StorageContract):
    pass


# --- URIs and layout ---


@pytest.mark.s3
def test_keys_map_to_object_keys_under_the_prefix(s3_bucket: str, s3_server: SeaweedFS) -> None:
    root = open_storage(f"s3://{s3_bucket}")
    nested = open_storage(f"s3://{s3_bucket}/teams/vision/")
    assert root.uri == f"s3://{s3_bucket}"
    assert nested.uri == f"s3://{s3_bucket}/teams/vision"
    nested.write_bytes("runs/r1/results.json", b"{}")
    root.write_bytes("top.txt", b"t")
    raw = s3_server.client().list_objects_v2(Bucket=s3_bucket)
    assert sorted(item["Key"] for item in raw["Contents"]) == ["teams/vision/runs/r1/results.json", "top.txt"]
    assert root.list() == ["teams/vision/runs/r1/results.json", "top.txt"]
    assert nested.list() == ["runs/r1/results.json"]
    assert root.read_bytes("teams/vision/runs/r1/results.json") == b"{}"
    assert nested.key_uri("runs/r1/results.json") == f"s3://{s3_bucket}/teams/vision/runs/r1/results.json"


@pytest.mark.s3
def test_directory_markers_from_other_tools_are_not_objects(
    store: S3Storage, s3_server: SeaweedFS, tmp_path: Path
) -> None:
    store.write_bytes("model/saved_model.pb", b"pb")
    s3_server.client().put_object(Bucket=store.bucket, Key=f"{store.prefix}/model/variables/", Body=b"")
    assert store.list() == ["model/saved_model.pb"]
    assert [p.name for p in store.download_tree("model", tmp_path / "m")] == ["saved_model.pb"]


@pytest.mark.s3
def test_large_file_goes_multipart_and_round_trips(store: S3Storage, tmp_path: Path) -> None:
    source, data = _file(tmp_path / "model.savedmodel.tar", 20 * MiB + 123)
    store.upload_file("variants/big/model.tar", source)
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/variants/big/model.tar")
    assert head["ETag"].strip('"').endswith("-3"), "20 MiB in 8 MiB parts is a 3-part multipart upload"
    assert store.size("variants/big/model.tar") == len(data)
    target = tmp_path / "back" / "model.tar"
    store.download_file("variants/big/model.tar", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


@pytest.mark.s3
def test_multipart_upload_in_progress_is_invisible(store: S3Storage, s3_server: SeaweedFS, tmp_path: Path) -> None:
    store.write_bytes("model.bin", b"old model")
    source, data = _file(tmp_path / "new.bin", 17 * MiB)
    observer = s3_server.client()
    seen_mid_upload: list[bytes] = []

    def look(**_: Any) -> None:
        # Called after each part is stored but before the upload is completed.
        seen_mid_upload.append(observer.get_object(Bucket=store.bucket, Key=f"{store.prefix}/model.bin")["Body"].read())

    store.client.meta.events.register("after-call.s3.UploadPart", look)
    store.upload_file("model.bin", source)
    assert len(seen_mid_upload) == 3
    assert set(seen_mid_upload) == {b"old model"}
    assert store.read_bytes("model.bin") == data


# --- errors ---


@pytest.mark.s3
def test_missing_bucket_is_named_for_every_operation(s3_env: SeaweedFS, tmp_path: Path) -> None:
    store = open_storage("s3://optismith-no-such-bucket/runs")
    assert isinstance(store, S3Storage)
    for action, operation in _every_operation(store, tmp_path).items():
        with pytest.raises(StorageError) as caught:
            operation()
        assert_names(
            caught.value,
            "bucket 'optismith-no-such-bucket' does not exist",
            "s3://optismith-no-such-bucket/runs",
            "create the bucket",
        )
        assert type(caught.value) is StorageError, action
    assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []


@pytest.mark.parametrize(
    "credentials", [("optismith-test", "wrong-secret"), ("UNKNOWNKEY", "whatever")], ids=["wrong-secret", "unknown-key"]
)
@pytest.mark.s3
def test_wrong_credentials_are_rejected(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credentials: tuple[str, str]
) -> None:
    open_storage(f"s3://{s3_bucket}/runs").write_bytes("stages/a.json", b"{}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials[1])
    store = open_storage(f"s3://{s3_bucket}/runs")
    assert isinstance(store, S3Storage)
    for action, operation in _every_operation(store, tmp_path).items():
        with pytest.raises(StorageAuthError) as caught:
            operation()
        assert_names(caught.value, "refused the credentials", f"s3://{s3_bucket}/runs", "access key")
        assert caught.value.exit_code == 6, action


@pytest.mark.s3
def test_no_credentials_at_all(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageAuthError) as caught:
        open_storage(f"s3://{s3_bucket}/runs").read_bytes("a.json")
    assert_names(caught.value, "no usable S3 credentials", "credentialsSecret", "IRSA")


# --- outages ---


def _assert_unreachable(operation: Callable[[], object], server: SeaweedFS, bound: float) -> None:
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        operation()
    elapsed = time.monotonic() - started
    assert type(caught.value) is StorageError, caught.value
    assert_names(caught.value, "unreachable", server.endpoint, "object store is up")
    assert elapsed < bound, f"took {elapsed:.1f}s to give up"


@pytest.mark.s3
def test_crash_during_download_then_back(store: S3Storage, s3_server: SeaweedFS, tmp_path: Path) -> None:
    source, data = _file(tmp_path / "model.bin", 20 * MiB)
    store.upload_file("model.bin", source)
    crashed = threading.Event()

    def crash_once(**_: Any) -> None:
        # The response headers are in, the body is still streaming: pull the plug now.
        if not crashed.is_set():
            crashed.set()
            s3_server.kill()

    store.client.meta.events.register("after-call.s3.GetObject", crash_once)
    target = tmp_path / "out" / "model.bin"
    _assert_unreachable(lambda: store.download_file("model.bin", target), s3_server, bound=15)
    assert crashed.is_set()
    assert not target.exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []
    s3_server.start()
    store.download_file("model.bin", target)
    assert target.read_bytes() == data


@pytest.mark.s3
def test_crash_during_upload_then_down_then_back(store: S3Storage, s3_server: SeaweedFS, tmp_path: Path) -> None:
    store.write_bytes("stages/a.json", b'{"a": 1}')
    store.write_bytes("model.bin", b"old model")
    source, data = _file(tmp_path / "model.bin", 20 * MiB)
    crashed = threading.Event()

    def crash_after_first_part(**_: Any) -> None:
        # One part is stored, the upload is not complete: pull the plug now.
        if not crashed.is_set():
            crashed.set()
            s3_server.kill()

    store.client.meta.events.register("after-call.s3.UploadPart", crash_after_first_part)
    _assert_unreachable(lambda: store.upload_file("model.bin", source), s3_server, bound=15)
    assert crashed.is_set()
    for operation in _every_operation(store, tmp_path).values():
        _assert_unreachable(operation, s3_server, bound=10)

    s3_server.start()
    fresh = open_storage(store.uri)
    assert fresh.read_bytes("model.bin") == b"old model", "a half-done multipart upload must stay invisible"
    assert fresh.read_bytes("stages/a.json") == b'{"a": 1}'
    assert fresh.list() == ["model.bin", "stages/a.json"]
    fresh.upload_file("model.bin", source)
    fresh.download_file("model.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == data


@pytest.mark.s3
def test_hung_server_fails_within_the_configured_timeouts(
    s3_bucket: str, s3_server: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_storage(f"s3://{s3_bucket}").write_bytes("a.json", b"{}")
    monkeypatch.setenv("OPTISMITH_S3_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("OPTISMITH_S3_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("OPTISMITH_S3_MAX_ATTEMPTS", "2")
    store = open_storage(f"s3://{s3_bucket}")
    s3_server.pause()
    try:
        _assert_unreachable(lambda: store.read_bytes("a.json"), s3_server, bound=6)
    finally:
        s3_server.resume()
    assert store.read_bytes("a.json") == b"{}"


# --- codes SeaweedFS never sends, checked through botocore's Stubber ---


@pytest.fixture(scope="module")
def offline_session() -> Any:
    import boto3

    return boto3.session.Session(region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")


def _stubbed(session: Any, code: str, status: int) -> tuple[S3Storage, Any]:
    from botocore.stub import Stubber

    client = session.client("s3")
    stubber = Stubber(client)
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    stubber.activate()
    return S3Storage("s3://models/prod", S3Settings(), client=client), stubber


@pytest.mark.parametrize(
    ("code", "status", "kind", "fragments"),
    [
        ("PermanentRedirect", 301, StorageError, ["another region", "spec.storage.region"]),
        ("AuthorizationHeaderMalformed", 400, StorageError, ["another region", "AWS_REGION"]),
        ("ExpiredToken", 400, StorageAuthError, ["ExpiredToken", "credentials"]),
        ("AccessDenied", 403, StorageAuthError, ["AccessDenied", "bucket policy"]),
        ("SlowDown", 503, StorageError, ["server error SlowDown", "overloaded"]),
        ("NoSuchKey", 404, StorageError, ["no such object"]),
        ("NoSuchBucket", 404, StorageError, ["bucket 'models' does not exist"]),
        ("WeirdNewCode", 400, StorageError, ["S3 error WeirdNewCode"]),
    ],
)
def test_error_codes_become_actionable_errors(
    offline_session: Any, code: str, status: int, kind: type[StorageError], fragments: list[str]
) -> None:
    store, stubber = _stubbed(offline_session, code, status)
    with pytest.raises(StorageError) as caught:
        store.read_bytes("model.onnx")
    assert type(caught.value) is kind
    assert_names(caught.value, "s3://models/prod/model.onnx", *fragments)
    stubber.assert_no_pending_responses()


def _open_uploads(store: S3Storage, key: str) -> list[str]:
    full = f"{store.prefix}/{key}"
    listing = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=full)
    return [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == full]


@pytest.mark.s3
def test_a_failed_multipart_upload_is_aborted(store: S3Storage, tmp_path: Path) -> None:
    """s3transfer aborts on an error it sees; the storage aborts again on anything else (an interrupt)."""
    source, _ = _file(tmp_path / "model.bin", 20 * MiB)
    parts: list[int] = []

    def fail_after_the_first_part(**_: Any) -> None:
        parts.append(1)
        if len(parts) == 2:
            raise ConnectionResetError("the network went away mid-upload")

    store.client.meta.events.register("before-call.s3.UploadPart", fail_after_the_first_part)
    with pytest.raises((StorageError, ConnectionResetError)):
        store.upload_file("model.bin", source)
    assert _open_uploads(store, "model.bin") == [], "the failed upload's parts are left open"


@pytest.mark.s3
def test_parts_a_killed_attempt_left_are_aborted_by_the_next_upload(store: S3Storage, tmp_path: Path) -> None:
    """What a SIGKILL mid-upload leaves: an open upload with a part. The retried stage's upload aborts it."""
    full = f"{store.prefix}/model.bin"
    started = store.client.create_multipart_upload(Bucket=store.bucket, Key=full)
    store.client.upload_part(Bucket=store.bucket, Key=full, UploadId=started["UploadId"], PartNumber=1,
                             Body=os.urandom(5 * MiB))
    assert _open_uploads(store, "model.bin") == [started["UploadId"]]
    other = f"{store.prefix}/model.bin.other"
    kept = store.client.create_multipart_upload(Bucket=store.bucket, Key=other)["UploadId"]
    source, data = _file(tmp_path / "model.bin", 17 * MiB)
    store.upload_file("model.bin", source)
    assert _open_uploads(store, "model.bin") == []
    assert _open_uploads(store, "model.bin.other") == [kept], "only the key being uploaded is touched"
    assert store.read_bytes("model.bin") == data
