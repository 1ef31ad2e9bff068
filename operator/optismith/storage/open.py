"""Pick a storage implementation from a URI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optismith.storage.base import Storage
from optismith.storage.local import LocalStorage

if TYPE_CHECKING:
    from optismith.spec import StorageSpec


def open_storage(uri: str, settings: StorageSpec | None = None) -> Storage:
    if uri.startswith("s3://"):
        from optismith.storage.s3 import S3Settings, S3Storage

        s3 = S3Settings.from_env(
            endpoint=settings.endpoint if settings else None,
            region=settings.region if settings else None,
            path_style=settings.path_style if settings else None,
        )
        return S3Storage(uri, s3)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return LocalStorage(uri)
