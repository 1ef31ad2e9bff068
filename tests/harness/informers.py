"""A tiny informer: a watch-fed cache plus a callback, as controllers use them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from .client import AsyncClient

logger = logging.getLogger(__name__)
Obj = dict[str, Any]


class Informer:
    def __init__(self, client: AsyncClient, path: str, on_event: Callable[[str, Obj], None], **params: str) -> None:
        self.client = client
        self.path = path
        self.params = params
        self.on_event = on_event
        self.cache: dict[str, Obj] = {}  # uid -> the latest state
        self.synced = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async for kind, obj in self.client.watch(self.path, **self.params):
                    if kind == "SYNCED":
                        self.synced.set()
                        continue
                    uid = obj["metadata"]["uid"]
                    if kind == "DELETED":
                        self.cache.pop(uid, None)
                    else:
                        self.cache[uid] = obj
                    try:
                        self.on_event(kind, obj)
                    except Exception:
                        logger.exception("Informer callback failed for %s", self.path)
            except (aiohttp.ClientError, ConnectionError) as e:
                logger.debug("Watch of %s interrupted (%r); retrying.", self.path, e)
                await asyncio.sleep(0.2)
