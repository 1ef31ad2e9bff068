"""S3-compatible object storage through boto3 (AWS, MinIO, SeaweedFS).

Endpoint, region and addressing style come from the spec, else from the environment
(OPTISMITH_S3_ENDPOINT, AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, OPTISMITH_S3_PATH_STYLE).
Credentials come from boto3's normal chain, so IRSA / workload identity work without a Secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optismith.errors import StorageAuthError, StorageError
from optismith.storage.base import Storage, join_uri

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden",
               "InvalidToken", "ExpiredToken"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    max_attempts: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls, endpoint: str | None = None, region: str | None = None,
                 path_style: bool | None = None) -> S3Settings:
        env_path_style = os.environ.get("OPTISMITH_S3_PATH_STYLE", "").lower() in ("1", "true", "yes")
        return cls(
            endpoint=endpoint or os.environ.get("OPTISMITH_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL"),
            region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            path_style=path_style or env_path_style,
            max_attempts=int(os.environ.get("OPTISMITH_S3_MAX_ATTEMPTS", "4")),
        )


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise StorageError(f"not an s3:// URI: {uri!r}", fix="write s3://bucket/prefix")
    rest = uri[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StorageError("the S3 URI has no bucket", where=uri, fix="write s3://bucket/prefix")
    return bucket, prefix.strip("/")


class S3Storage(Storage):
    def __init__(self, uri: str, settings: S3Settings | None = None, client: Any = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.settings = settings or S3Settings.from_env()
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self.settings.max_attempts, "mode": "standard"},
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
                s3={"addressing_style": "path" if self.settings.path_style else "auto"},
            )
            self._client = boto3.client(
                "s3", endpoint_url=self.settings.endpoint, region_name=self.settings.region, config=config
            )
        return self._client

    def _key(self, key: str) -> str:
        if ".." in key.split("/"):
            raise StorageError(f"key {key!r} escapes the prefix", where=self.uri, fix="remove '..'")
        return join_uri(self.prefix, key) if self.prefix else key.strip("/")

    def _translate(self, error: Exception, key: str, action: str) -> StorageError:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = f"s3://{self.bucket}/{self._key(key)}"
        if isinstance(error, NoCredentialsError):
            return StorageAuthError(f"no S3 credentials found to {action}", where=where,
                                    fix="set spec.storage.credentialsSecret, AWS_* variables, or workload identity")
        if isinstance(error, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
            return StorageError(f"S3 endpoint unreachable while trying to {action}: {error}", where=where,
                                fix="check spec.storage.endpoint and that the object store is up")
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _AUTH_CODES:
                return StorageAuthError(f"S3 refused the credentials ({code}) to {action}", where=where,
                                        fix="check the access key, secret and the bucket policy")
            if code == "NoSuchBucket":
                return StorageError(f"bucket {self.bucket!r} does not exist", where=where,
                                    fix="create the bucket or correct the URI")
            if code in _MISSING_CODES:
                return StorageError("no such object", where=where, fix="check the URI and that it was uploaded")
            return StorageError(f"S3 error {code} while trying to {action}: {error}", where=where)
        return StorageError(f"S3 failure while trying to {action}: {error}", where=where)

    def _call(self, action: str, key: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except Exception as error:
            if type(error).__module__.startswith(("botocore", "boto3")):
                raise self._translate(error, key, action) from None
            raise

    def read_bytes(self, key: str) -> bytes:
        response = self._call("read", key, "get_object", Bucket=self.bucket, Key=self._key(key))
        data: bytes = response["Body"].read()
        return data

    def write_bytes(self, key: str, data: bytes) -> None:
        # One PUT is atomic: readers never see a partial object.
        self._call("write", key, "put_object", Bucket=self.bucket, Key=self._key(key), Body=data)

    def upload_file(self, key: str, path: Path) -> None:
        # Multipart uploads are also atomic: the object appears only when the upload completes.
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key))
        except Exception as error:
            if type(error).__module__.startswith(("botocore", "boto3")):
                cause = getattr(error, "__cause__", None) or error
                raise self._translate(cause if isinstance(cause, Exception) else error, key, "upload") from None
            raise

    def download_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.part")
        try:
            self.client.download_file(self.bucket, self._key(key), str(temp))
        except Exception as error:
            temp.unlink(missing_ok=True)
            if type(error).__module__.startswith(("botocore", "boto3")):
                raise self._translate(error, key, "download") from None
            raise
        temp.replace(path)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                return False
            raise self._translate(error, key, "check") from None
        except Exception as error:
            if type(error).__module__.startswith("botocore"):
                raise self._translate(error, key, "check") from None
            raise

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        if prefix.endswith("/") and not full.endswith("/"):
            full += "/"
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            response = self._call("list", prefix, "list_objects_v2", **kwargs)
            for item in response.get("Contents", []):
                key = item["Key"]
                if self.prefix:
                    key = key[len(self.prefix) + 1:]
                keys.append(key)
            if not response.get("IsTruncated"):
                break
            token = response.get("NextContinuationToken")
        return sorted(keys)

    def size(self, key: str) -> int:
        response = self._call("stat", key, "head_object", Bucket=self.bucket, Key=self._key(key))
        return int(response["ContentLength"])

    def delete(self, key: str) -> None:
        targets = self.list(key.rstrip("/") + "/") if not self.exists(key) else [key]
        for target in targets:
            self._call("delete", target, "delete_object", Bucket=self.bucket, Key=self._key(target))

    def child(self, prefix: str) -> S3Storage:
        return S3Storage(f"s3://{self.bucket}/{self._key(prefix)}", self.settings, self._client)
