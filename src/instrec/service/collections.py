"""The collections one service answers from (:mod:`instrec.library.collections`).

Each collection gets its own :class:`~instrec.recognizer.Recognizer` (its catalog, indexes and
threshold) opened on its first request and kept open, at most ``service.max_open_collections``
of them besides the default: opening one more closes the one unused longest, unless requests are
using it (then the service runs above the bound until one is idle). They all share the default
collection's embedder (one model in memory) and the service's inference slots (the cores are
shared whatever the collection). Catalog writes are serialised per collection, as each has its own
catalog (a SQLite file, or a PostgreSQL schema).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable

import time

import anyio
import anyio.to_thread

from instrec.config import DEFAULT_COLLECTION, Config
from instrec.errors import UnknownCollectionError
from instrec.library import collection_exists, delete_collection, list_collections
from instrec.service.errors import ApiError
from instrec.service.metrics import LibrarySize

if TYPE_CHECKING:
    from instrec.recognizer import Recognizer


@dataclass
class Collection:
    name: str
    recognizer: "Recognizer"
    writes: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))  # one catalog writer at a time
    users: int = 0  # requests using it now: deleting waits for them
    idle: anyio.Event | None = None  # set when the last user leaves a collection being deleted
    closing: bool = False  # closed or being closed: a request that got here late opens it anew
    used: float = field(default_factory=time.monotonic)  # when a request last took it


class Collections:
    """Open collections by name; create the lifespan's event loop first (the limiters need it)."""

    def __init__(self, config: Config, default: "Recognizer", opened: Callable[["Recognizer"], None]):
        self.config = config
        self.default = default
        self._opened = opened  # called on a worker thread for each collection opened (background re-calibration)
        self._open = {DEFAULT_COLLECTION: Collection(DEFAULT_COLLECTION, default)}
        self._lock = anyio.Lock()  # opening, creating and deleting: one at a time

    def names(self) -> list[str]:
        """The collections of the home, ``default`` always first (it answers even while still empty)."""
        listed = list_collections(self.config.home, self.config.catalog.url)
        return [DEFAULT_COLLECTION, *(n for n in listed if n != DEFAULT_COLLECTION)]

    @asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[Collection]:
        """Collection ``name`` for the time of a request (404 if the home holds none of that name)."""
        collection = self._open.get(name)
        if collection is not None and name != DEFAULT_COLLECTION and not await self._still_there(collection):
            await self._forget(name)  # deleted by another process (a worker, a replica, instrec delete-collection)
            collection = None
        collection = collection or await self._opening(name)
        if collection.closing:  # closed to make room, or deleted, while this request was on its way
            collection = await self._opening(name)
        collection.used = time.monotonic()
        async with _held(collection):
            yield collection

    async def sizes(self) -> dict[str, LibrarySize]:
        """What each open collection holds (a collection being deleted meanwhile waits for its read)."""
        sizes = {}
        for name in list(self._open):
            collection = self._open.get(name)
            if collection is not None and not collection.closing:  # else closed since the list was taken
                async with _held(collection):
                    sizes[name] = await anyio.to_thread.run_sync(LibrarySize.of, collection.recognizer)
        return sizes

    async def create(self, name: str) -> bool:
        """Create collection ``name``; False if it existed already."""
        async with self._lock:
            if await anyio.to_thread.run_sync(self._exists, name):
                return False
            await self._close(name)  # open here, deleted by another process
            await self._make_room()
            self._open[name] = Collection(name, await anyio.to_thread.run_sync(self._recognizer, name))
            return True

    async def delete(self, name: str) -> None:
        """Delete collection ``name`` once the requests using it have finished; new ones get 404."""
        if name == DEFAULT_COLLECTION:
            raise ApiError(409, "default_collection", "the default collection is the home itself and cannot be deleted")
        async with self._lock:  # no request re-opens it meanwhile: opening waits for this lock
            await self._close(name)
            await anyio.to_thread.run_sync(delete_collection, self.config.home, name, self.config.catalog.url)

    async def close(self) -> None:
        """Close every collection but the default one (its owner closes it)."""
        async with self._lock:
            others = [c for name, c in self._open.items() if name != DEFAULT_COLLECTION]
            self._open = {DEFAULT_COLLECTION: self._open[DEFAULT_COLLECTION]}
        for collection in others:
            await anyio.to_thread.run_sync(collection.recognizer.close)

    async def _forget(self, name: str) -> None:
        async with self._lock:
            await self._close(name)

    async def _close(self, name: str) -> None:
        """Close collection ``name`` once the requests using it have finished (holding the lock)."""
        collection = self._open.pop(name, None)
        if collection is not None:
            collection.closing = True
            if collection.users:
                collection.idle = anyio.Event()
                await collection.idle.wait()
            await anyio.to_thread.run_sync(collection.recognizer.close)

    async def _opening(self, name: str) -> Collection:
        async with self._lock:
            if name not in self._open:
                if not await anyio.to_thread.run_sync(self._exists, name):
                    raise UnknownCollectionError(name)
                await self._make_room()
                self._open[name] = Collection(name, await anyio.to_thread.run_sync(self._recognizer, name))
            return self._open[name]

    async def _make_room(self) -> None:
        """Close the collections unused longest that no request is using, down to one below the bound
        (holding the lock)."""
        idle = sorted((c for n, c in self._open.items() if n != DEFAULT_COLLECTION and not c.users), key=lambda c: c.used)
        excess = len(self._open) - self.config.service.max_open_collections  # the default is not counted
        for collection in idle[: max(0, excess)]:
            await self._close(collection.name)

    def _exists(self, name: str) -> bool:
        return collection_exists(self.config.home, name, self.config.catalog.url)

    async def _still_there(self, collection: Collection) -> bool:
        """Whether an open collection's catalog is still the one it was opened on: a stat of its SQLite
        file, at once; a query on a PostgreSQL catalog, off the event loop."""
        catalog = collection.recognizer.library.catalog
        if self.config.catalog.url is None:
            return catalog.exists()
        return await anyio.to_thread.run_sync(catalog.exists)

    def _recognizer(self, name: str) -> "Recognizer":
        """Open collection ``name``'s library, creating it if needed: in a worker thread, it reads files."""
        from instrec.recognizer import Recognizer

        recognizer = Recognizer(self.config.with_overrides({"collection": name}), embedder=self.default.embedder)
        try:
            recognizer.stats()  # opens the catalog and the indexes (creates them for a new collection)
        except BaseException:
            recognizer.close()
            raise
        self._opened(recognizer)
        return recognizer


@asynccontextmanager
async def _held(collection: Collection) -> AsyncIterator[None]:
    """Counted among ``collection``'s users meanwhile: closing it waits until the last one leaves."""
    collection.users += 1
    try:
        yield
    finally:
        collection.users -= 1
        if collection.users == 0 and collection.idle is not None:
            collection.idle.set()
