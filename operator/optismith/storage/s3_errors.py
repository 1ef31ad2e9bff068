"""Turns boto3 / botocore / s3transfer exceptions into StorageErrors that say what to do."""

from __future__ import annotations

from collections.abc import Callable

from optismith.errors import StorageAuthError, StorageError

AUTH_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden", "InvalidToken",
    "ExpiredToken", "TokenRefreshRequired", "InvalidSecurity", "AllAccessDisabled", "AccountProblem",
})
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "301",
                          "IllegalLocationConstraintException", "IncorrectEndpoint"})
SERVER_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "502",
                          "503", "504"})


def unwrap(error: BaseException) -> BaseException:
    """The error that actually happened, beneath boto3's and s3transfer's wrappers."""
    for _ in range(5):
        inner = getattr(error, "last_exception", None)  # RetriesExceededError (boto3 and s3transfer)
        if inner is None and type(error).__name__ in ("S3UploadFailedError", "S3DownloadFailedError"):
            inner = error.__cause__ or error.__context__
        if not isinstance(inner, BaseException):
            return error
        error = inner
    return error


def _is_connection_failure(error: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError

    if isinstance(error, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return True
    # Mid-stream failures of a response body surface as urllib3 errors or plain socket errors.
    return type(error).__module__.startswith("urllib3") or isinstance(error, ConnectionError | TimeoutError)


def translate(error: BaseException, *, where: str, action: str, bucket: str, endpoint: str | None,
              bucket_exists: Callable[[], bool | None]) -> StorageError:
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    error = unwrap(error)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return StorageAuthError(f"no usable S3 credentials to {action}: {error}", where=where,
                                fix="set spec.storage.credentialsSecret, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                                    "or workload identity (IRSA)")
    if _is_connection_failure(error):
        target = endpoint or "the AWS S3 endpoint"
        return StorageError(f"S3 endpoint {target} unreachable while trying to {action}: {error}", where=where,
                            fix="check spec.storage.endpoint (or OPTISMITH_S3_ENDPOINT), the network, "
                                "and that the object store is up")
    if not isinstance(error, ClientError):
        return StorageError(f"S3 failure while trying to {action}: {type(error).__name__}: {error}", where=where,
                            fix="check the object store's health and retry")
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in AUTH_CODES:
        return StorageAuthError(f"S3 refused the credentials or access ({code}) to {action}", where=where,
                                fix="check the access key and secret (spec.storage.credentialsSecret or "
                                    "AWS_* variables) and that the bucket policy allows this")
    if code == "NoSuchBucket" or (code in MISSING_CODES and bucket_exists() is False):
        return StorageError(f"bucket {bucket!r} does not exist", where=where,
                            fix=f"create the bucket {bucket!r} or correct the URI")
    if code in MISSING_CODES:
        return StorageError("no such object", where=where,
                            fix="check the URI and that the object was uploaded (or the stage producing it ran)")
    if code in REGION_CODES:
        return StorageError(f"bucket {bucket!r} is in another region or needs another endpoint ({code})",
                            where=where, fix="set spec.storage.region (or AWS_REGION) to the bucket's region")
    if code == "InvalidBucketName":
        return StorageError(f"the object store rejects the bucket name {bucket!r}", where=where,
                            fix="use 3-63 lower-case letters, digits, '.' and '-'")
    if code in SERVER_CODES:
        return StorageError(f"S3 server error {code} while trying to {action}, after retries: {error}",
                            where=where, fix="the object store is failing or overloaded; check it and retry")
    return StorageError(f"S3 error {code} while trying to {action}: {error}", where=where,
                        fix="see the S3 error code above")
