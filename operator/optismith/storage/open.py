"""Pick a storage implementation from a URI."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from optismith.errors import StorageError
from optismith.storage.base import Storage
from optismith.storage.local import LocalStorage

if TYPE_CHECKING:
    from optismith.spec import StorageSpec

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_storage(uri: str, settings: StorageSpec | None = None) -> Storage:
    """s3://bucket[/prefix] -> S3Storage; file://path or a plain path -> LocalStorage.

    S3 settings come from `settings` (spec.storage) first, then the environment; see S3Settings.from_env.
    """
    scheme = _SCHEME.match(uri)
    if scheme is None:
        if not uri.strip():
            raise StorageError("the storage URI is empty", fix="give a local path, file:///path or s3://bucket/prefix")
        return LocalStorage(uri)
    name = scheme.group(1).lower()
    if name == "s3":
        from optismith.storage.s3 import S3Settings, S3Storage

        s3 = S3Settings.from_env(
            endpoint=settings.endpoint if settings else None,
            region=settings.region if settings else None,
            path_style=settings.path_style if settings else None,
        )
        return S3Storage("s3://" + uri[scheme.end():], s3)
    if name == "file":
        # Like the model and data loaders: file://x is the path x (relative), file:///x is absolute.
        path = uri[scheme.end():]
        if not path:
            raise StorageError("the file URI has no path", where=uri, fix="write file:///absolute/path")
        return LocalStorage(path)
    raise StorageError(f"unsupported storage scheme {name!r}", where=uri,
                       fix="use s3://bucket/prefix (AWS, MinIO, SeaweedFS), file:///path, "
                           "or a local path")
