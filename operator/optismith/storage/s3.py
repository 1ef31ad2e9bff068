"""S3-compatible object storage through boto3 (AWS, MinIO, SeaweedFS).

Settings resolve in this order: the spec (spec.storage), then the environment, then boto3's defaults.
Credentials always come from boto3's chain (AWS_* variables, profiles, IRSA / workload identity), so
the operator can hand a Job credentials as Secret references or not at all. See docs/storage.md.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from optismith.errors import StorageAuthError, StorageError
from optismith.storage.base import Storage, normalize_key
from optismith.storage.s3_errors import translate

T = TypeVar("T")

_MiB = 1 << 20
# Legacy us-east-1 rules (upper case, '_', up to 255) are the loosest S3 allows; anything else is a typo.
_BUCKET = re.compile(r"[A-Za-z0-9._-]{3,255}")
_DELETE_BATCH = 1000
_ENV_WHERE = "environment"


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise StorageError(f"{name}={raw!r} is not a number >= {minimum:g}", where=_ENV_WHERE,
                           fix=f"set {name} to a number such as {default:g}, or unset it")
    return value


def _check_endpoint(endpoint: str | None, where: str) -> str | None:
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise StorageError(f"S3 endpoint {endpoint!r} has no scheme", where=where,
                           fix=f"write it as a URL, e.g. http://{endpoint}")
    return endpoint or None


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    # Bounded so that a dead endpoint fails in seconds and a hung one in about a minute, not in hours.
    max_attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 20.0

    @classmethod
    def from_env(cls, endpoint: str | None = None, region: str | None = None,
                 path_style: bool | None = None) -> S3Settings:
        """Arguments (from spec.storage) win; unset ones come from the environment, then defaults."""
        if endpoint:
            resolved = _check_endpoint(endpoint, "spec.storage.endpoint")
        else:
            name = next((n for n in ("OPTISMITH_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
                         if os.environ.get(n)), "")
            resolved = _check_endpoint(os.environ.get(name), name) if name else None
        env_path_style = os.environ.get("OPTISMITH_S3_PATH_STYLE", "").strip().lower() in ("1", "true", "yes")
        return cls(
            endpoint=resolved,
            region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            path_style=bool(path_style) or env_path_style,
            max_attempts=int(_env_number("OPTISMITH_S3_MAX_ATTEMPTS", cls.max_attempts, 1)),
            connect_timeout=_env_number("OPTISMITH_S3_CONNECT_TIMEOUT", cls.connect_timeout, 0.1),
            read_timeout=_env_number("OPTISMITH_S3_READ_TIMEOUT", cls.read_timeout, 0.1),
        )


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise StorageError(f"not an s3:// URI: {uri!r}", where=uri, fix="write s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise StorageError("the S3 URI has no bucket", where=uri, fix="write s3://bucket/prefix")
    if not _BUCKET.fullmatch(bucket):
        raise StorageError(f"{bucket!r} is not a valid S3 bucket name", where=uri,
                           fix="bucket names are 3-63 characters: lower-case letters, digits, '.' and '-'")
    return bucket, normalize_key(prefix, uri)


_model_loader: Any = None


def _fresh_session() -> Any:
    """A boto3 session of our own: the default session keeps the first credentials it ever found, so
    rotated secrets or a changed environment would be ignored. The (read-only) API-model loader is
    shared, which makes a new session cost milliseconds instead of a re-parse of the S3 model."""
    global _model_loader
    import boto3
    import botocore.session
    from botocore.loaders import create_loader

    if _model_loader is None:
        _model_loader = create_loader()
    core = botocore.session.get_session()
    core.register_component("data_loader", _model_loader)
    return boto3.session.Session(botocore_session=core)


def sts_client(region: str | None = None) -> Any:
    """An STS client from boto3's credential chain (the operator's own identity), for AssumeRole."""
    return _fresh_session().client("sts", region_name=region or os.environ.get("AWS_REGION") or "us-east-1")


def _is_sdk_error(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] in ("botocore", "boto3", "s3transfer", "urllib3")


class S3Storage(Storage):
    def __init__(self, uri: str, settings: S3Settings | None = None, client: Any = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.settings = settings or S3Settings.from_env()
        self._client = client
        self._bucket_seen = False

    @property
    def client(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self.settings.max_attempts, "mode": "standard"},
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
                s3={"addressing_style": "path" if self.settings.path_style else "auto"},
                # Newer boto3 adds CRC checksums to every request; several S3-compatible stores reject them.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            try:
                self._client = _fresh_session().client(
                    "s3", endpoint_url=self.settings.endpoint, region_name=self.settings.region, config=config
                )
            except ValueError as error:
                raise StorageError(f"cannot use the S3 endpoint: {error}", where=str(self.settings.endpoint),
                                   fix="set spec.storage.endpoint to a URL such as http://minio:9000") from None
        return self._client

    @property
    def _transfer(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        # Few download attempts: each one already retries max_attempts times inside botocore.
        return TransferConfig(multipart_threshold=8 * _MiB, multipart_chunksize=8 * _MiB, max_concurrency=4,
                              num_download_attempts=2)

    def _full(self, key: str) -> str:
        clean = normalize_key(key, self.uri)
        if self.prefix and clean:
            return f"{self.prefix}/{clean}"
        return self.prefix or clean

    def _run(self, action: str, full_key: str, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except StorageError:
            raise
        except Exception as error:
            if not _is_sdk_error(error):
                raise
            raise self._translate(error, full_key, action) from None

    def _translate(self, error: Exception, full_key: str, action: str) -> StorageError:
        where = f"s3://{self.bucket}/{full_key}".rstrip("/")
        return translate(error, where=where, action=action, bucket=self.bucket,
                         endpoint=self.settings.endpoint, bucket_exists=self._bucket_exists)

    def _bucket_exists(self) -> bool | None:
        """Tells 'no such key' from 'no such bucket' when S3 answers a bare 404 (HEAD has no body)."""
        if self._bucket_seen:
            return True
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
            return False if code in ("404", "NoSuchBucket", "NotFound") else None
        self._bucket_seen = True
        return True

    def _local_error(self, error: OSError, path: Path, action: str) -> StorageError:
        return StorageError(f"cannot {action}: {error.strerror or error}", where=str(path),
                            fix="choose a writable local directory with enough free space")

    # --- objects ---

    def read_bytes(self, key: str) -> bytes:
        full = self._full(key)

        def read() -> bytes:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
            return body

        return self._run("read", full, read)

    def write_bytes(self, key: str, data: bytes) -> None:
        full = self._full(key)
        # One PUT is atomic: readers see the old object or the new one, never a partial one.
        self._run("write", full, lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=data))

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        full = self._full(key)

        def read() -> tuple[bytes, str] | None:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=full)
            except Exception as error:
                code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchKey", "NotFound") and self._bucket_exists() is not False:
                    return None
                raise
            return response["Body"].read(), str(response["ETag"])

        return self._run("read", full, read)

    def write_if(self, key: str, data: bytes, expected: str | None) -> bool:
        """S3 conditional writes: If-None-Match: * to create, If-Match: <ETag> to replace (AWS S3, MinIO and
        recent SeaweedFS honour them). A store that ignores them silently degrades to last-writer-wins:
        docs/storage.md says which stores are safe."""
        full = self._full(key)
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}

        def write() -> bool:
            try:
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **condition)
            except Exception as error:
                code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
                # 412: the object changed (or exists); 409: a concurrent conditional write won the race.
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    return False
                raise
            return True

        return self._run("write", full, write)

    def upload_file(self, key: str, path: Path) -> None:
        full = self._full(key)
        if not path.is_file():
            raise StorageError("no such local file to upload", where=str(path), fix="check the path")
        # Above the threshold this is a multipart upload; the object appears only once it completes.
        multipart = path.stat().st_size >= self._transfer.multipart_threshold
        if multipart:
            self._abort_unfinished(full)  # parts an earlier attempt left when it was killed mid-upload
        try:
            self._run("upload", full, lambda: self.client.upload_file(str(path), self.bucket, full,
                                                                      Config=self._transfer))
        except BaseException:
            if multipart:
                self._abort_unfinished(full)
            raise

    def _abort_unfinished(self, full: str) -> int:
        """Abort the multipart uploads still open for exactly `full`: S3 keeps (and bills) their parts until they
        are aborted. Best effort: when S3 is unreachable the bucket's lifecycle rule is the backstop
        (docs/reliability.md). Returns how many were aborted."""
        aborted = 0
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=full)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == full:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload["UploadId"])
                    aborted += 1
        except Exception as error:
            if not _is_sdk_error(error):
                raise
        return aborted

    def download_file(self, key: str, path: Path) -> None:
        full = self._full(key)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._run("download", full, lambda: self.client.download_file(self.bucket, full, str(temp),
                                                                           Config=self._transfer))
            os.replace(temp, path)
        except OSError as error:
            raise self._local_error(error, path, "write the download") from None
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """True for an object, and (as for a local directory) for a prefix with objects below it."""
        full = self._full(key)
        if full and full != self.prefix and self._head(full) is not None:
            return True
        return self.is_prefix(key)

    def _head(self, full: str) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=full)
            return response
        except Exception as error:
            code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound") and self._bucket_exists() is not False:
                return None
            if not _is_sdk_error(error):
                raise
            raise self._translate(error, full, "check") from None

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys of the object named prefix and of every object below it; a trailing '/' means below only."""
        clean = normalize_key(prefix, self.uri)
        base = self._full(clean)
        exact = bool(clean) and not prefix.endswith("/")
        search = base if exact else (f"{base}/" if base else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: builtins.list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")

        def collect() -> None:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=search):
                for item in page.get("Contents", []):
                    key: str = item["Key"]
                    if key.endswith("/"):
                        continue  # a 'directory' marker some tools create, not an object
                    if exact and key != base and not key.startswith(base + "/"):
                        continue  # a sibling such as 'model2' when listing 'model'
                    keys.append(key[strip:])

        self._run("list", search, collect)
        return sorted(keys)

    def size(self, key: str) -> int:
        full = self._full(key)
        head = self._head(full)
        if head is None:
            raise StorageError("no such object", where=f"s3://{self.bucket}/{full}",
                               fix="check the URI and that the object was uploaded")
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        """Deletes the object named key and everything below it; deleting nothing is not an error."""
        targets = [self._full(k) for k in self.list(key)]
        for start in range(0, len(targets), _DELETE_BATCH):
            batch = [{"Key": k} for k in targets[start:start + _DELETE_BATCH]]

            def delete_batch(batch: builtins.list[dict[str, str]] = batch) -> dict[str, Any]:
                response: dict[str, Any] = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                return response

            errors = self._run("delete", targets[start], delete_batch).get("Errors", [])
            if errors:
                first = errors[0]
                failure = StorageAuthError if first.get("Code") == "AccessDenied" else StorageError
                raise failure(f"S3 refused to delete {len(errors)} object(s): {first.get('Message', '')}",
                              where=f"s3://{self.bucket}/{first.get('Key', '')}",
                              fix="check that the credentials may delete objects in this bucket")

    def child(self, prefix: str) -> S3Storage:
        store = S3Storage(f"s3://{self.bucket}/{self._full(prefix)}", self.settings, self._client)
        store._bucket_seen = self._bucket_seen
        return store
