"""open_storage: which backend a URI gets, and how S3 settings resolve (spec > environment > defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optismith.errors import StorageError
from optismith.spec import StorageSpec
from optismith.storage import open_storage
from optismith.storage.local import LocalStorage
from optismith.storage.s3 import S3Settings, S3Storage
from tests.fixtures.seaweedfs import SeaweedFS
from tests.storage.storage_contract import assert_names

_S3_ENV = (
    "OPTISMITH_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "OPTISMITH_S3_PATH_STYLE",
    "OPTISMITH_S3_MAX_ATTEMPTS",
    "OPTISMITH_S3_CONNECT_TIMEOUT",
    "OPTISMITH_S3_READ_TIMEOUT",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _S3_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _s3(uri: str, spec: StorageSpec | None = None) -> S3Storage:
    store = open_storage(uri, spec)
    assert isinstance(store, S3Storage)
    return store


# --- local ---


@pytest.mark.parametrize("form", ["plain", "file-absolute", "file-relative", "home"])
def test_local_forms(form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    uri, expected = {
        "plain": ("runs/r1", tmp_path / "runs" / "r1"),
        "file-absolute": (f"file://{tmp_path}/runs/r1", tmp_path / "runs" / "r1"),
        "file-relative": ("file://runs/r1", tmp_path / "runs" / "r1"),
        "home": ("~/runs", tmp_path / "home" / "runs"),
    }[form]
    store = open_storage(uri)
    assert isinstance(store, LocalStorage)
    assert store.root == expected
    store.write_bytes("a.json", b"{}")
    assert (expected / "a.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    ("uri", "fragments"),
    [
        ("gs://bucket/runs", ["unsupported storage scheme 'gs'", "s3://bucket/prefix"]),
        ("https://example.com/runs", ["unsupported storage scheme 'https'"]),
        ("", ["storage URI is empty"]),
        ("file://", ["no path"]),
        ("s3://", ["no bucket"]),
        ("s3:///runs", ["no bucket"]),
        ("s3://my bucket/runs", ["not a valid S3 bucket name"]),
        ("s3://ab/runs", ["not a valid S3 bucket name", "3-63"]),
        ("s3://bucket/runs/../other", ["escapes the storage root"]),
    ],
)
def test_bad_uris_say_what_to_write(uri: str, fragments: list[str], clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(StorageError) as caught:
        open_storage(uri)
    assert_names(caught.value, *fragments)


# --- s3 URIs ---


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix", "normalized"),
    [
        ("s3://models", "models", "", "s3://models"),
        ("s3://models/", "models", "", "s3://models"),
        ("s3://models/digits", "models", "digits", "s3://models/digits"),
        ("s3://models/digits/v1/", "models", "digits/v1", "s3://models/digits/v1"),
        ("s3://models//digits/./v1", "models", "digits/v1", "s3://models/digits/v1"),
        ("S3://models/digits", "models", "digits", "s3://models/digits"),
    ],
)
def test_s3_uris_with_and_without_prefix(
    uri: str, bucket: str, prefix: str, normalized: str, clean_env: pytest.MonkeyPatch
) -> None:
    store = _s3(uri)
    assert (store.bucket, store.prefix, store.uri) == (bucket, prefix, normalized)
    assert store.key_uri("a/b.json") == f"{normalized}/a/b.json"
    assert store.child("runs").uri == f"{normalized}/runs"


# --- settings resolution ---


def test_defaults_without_spec_or_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert _s3("s3://models").settings == S3Settings(
        endpoint=None, region="us-east-1", path_style=False, max_attempts=3, connect_timeout=5.0, read_timeout=20.0
    )


def test_environment_fills_what_the_spec_leaves_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPTISMITH_S3_ENDPOINT", "http://minio.storage:9000")
    clean_env.setenv("AWS_REGION", "eu-west-1")
    clean_env.setenv("OPTISMITH_S3_PATH_STYLE", "true")
    clean_env.setenv("OPTISMITH_S3_MAX_ATTEMPTS", "5")
    clean_env.setenv("OPTISMITH_S3_CONNECT_TIMEOUT", "2.5")
    clean_env.setenv("OPTISMITH_S3_READ_TIMEOUT", "90")
    assert _s3("s3://models", StorageSpec()).settings == S3Settings(
        endpoint="http://minio.storage:9000",
        region="eu-west-1",
        path_style=True,
        max_attempts=5,
        connect_timeout=2.5,
        read_timeout=90.0,
    )


def test_spec_wins_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPTISMITH_S3_ENDPOINT", "http://from-env:9000")
    clean_env.setenv("AWS_REGION", "eu-west-1")
    spec = StorageSpec.model_validate({"endpoint": "https://from-spec:8333", "region": "ap-south-1", "pathStyle": True})
    settings = _s3("s3://models", spec).settings
    assert (settings.endpoint, settings.region, settings.path_style) == ("https://from-spec:8333", "ap-south-1", True)


@pytest.mark.parametrize(
    ("variables", "endpoint", "region"),
    [
        ({"AWS_ENDPOINT_URL": "http://generic:1"}, "http://generic:1", "us-east-1"),
        (
            {"AWS_ENDPOINT_URL_S3": "http://s3-only:2", "AWS_ENDPOINT_URL": "http://generic:1"},
            "http://s3-only:2",
            "us-east-1",
        ),
        (
            {"OPTISMITH_S3_ENDPOINT": "http://ours:3", "AWS_ENDPOINT_URL_S3": "http://s3-only:2"},
            "http://ours:3",
            "us-east-1",
        ),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, None, "us-west-2"),
        ({"AWS_DEFAULT_REGION": "us-west-2", "AWS_REGION": "eu-central-1"}, None, "eu-central-1"),
    ],
)
def test_environment_precedence(
    variables: dict[str, str], endpoint: str | None, region: str, clean_env: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        clean_env.setenv(name, value)
    settings = _s3("s3://models").settings
    assert (settings.endpoint, settings.region) == (endpoint, region)


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_path_style_off_unless_asked(value: str, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPTISMITH_S3_PATH_STYLE", value)
    assert _s3("s3://models").settings.path_style is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPTISMITH_S3_MAX_ATTEMPTS", "many"),
        ("OPTISMITH_S3_MAX_ATTEMPTS", "0"),
        ("OPTISMITH_S3_READ_TIMEOUT", "-1"),
        ("OPTISMITH_S3_CONNECT_TIMEOUT", "soon"),
    ],
)
def test_bad_tuning_variables_are_named(name: str, value: str, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(StorageError) as caught:
        open_storage("s3://models")
    assert_names(caught.value, f"{name}={value!r}", "environment", f"set {name}")


def test_endpoint_without_scheme(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(StorageError) as caught:
        open_storage("s3://models", StorageSpec(endpoint="minio:9000"))
    assert_names(caught.value, "'minio:9000' has no scheme", "spec.storage.endpoint", "http://minio:9000")
    clean_env.setenv("OPTISMITH_S3_ENDPOINT", "seaweedfs:8333")
    with pytest.raises(StorageError) as caught:
        open_storage("s3://models")
    assert_names(caught.value, "OPTISMITH_S3_ENDPOINT", "http://seaweedfs:8333")


@pytest.mark.s3
def test_spec_settings_reach_a_real_server(
    s3_bucket: str, s3_server: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only credentials come from the environment; endpoint, region and addressing come from the spec."""
    for name in ("OPTISMITH_S3_ENDPOINT", "OPTISMITH_S3_PATH_STYLE", "AWS_REGION"):
        monkeypatch.delenv(name)
    spec = StorageSpec.model_validate({"endpoint": s3_server.endpoint, "region": s3_server.region, "pathStyle": True})
    store = open_storage(f"s3://{s3_bucket}/runs/r1", spec)
    store.write_bytes("results.json", b'{"selected": "tflite-int8"}')
    raw = s3_server.client().get_object(Bucket=s3_bucket, Key="runs/r1/results.json")
    assert raw["Body"].read() == b'{"selected": "tflite-int8"}'
