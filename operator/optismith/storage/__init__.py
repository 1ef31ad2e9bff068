"""Storage behind one small interface: local directories and S3-compatible object stores."""

from optismith.storage.base import Storage, join_uri
from optismith.storage.open import open_storage

__all__ = ["Storage", "join_uri", "open_storage"]
