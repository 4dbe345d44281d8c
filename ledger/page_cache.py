"""The API's cache of finished provenance pages, kept exact by the database's change notices.

A page is worth caching: fifty events with their proofs cost milliseconds to gather and
serialise, and a product's page is scanned far more often than its goods change. Exactness
comes from migration 0006: every statement that changes what a page shows advances the
`page_generation` sequence and notifies `tracefin_pages` on commit. A request serves a cached
page only while the generation it was built at is current, and the listener thread clears the
cache on every notice (this covers a page built between a change and its commit). Without a
live listener nothing is cached.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ledger import log_store
from records.db import Conn

log = logging.getLogger(__name__)

_MAX_PAGES = 10_000


@dataclass
class CachedPage:
    """A page's data and the renderings made of it so far (JSON bytes, HTML per language)."""

    data: dict[str, Any]
    renderings: dict[Hashable, bytes] = field(default_factory=dict)


class PageCache:
    """Finished pages by key; see the module docstring for why they are never stale."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._pages: dict[Hashable, tuple[int, CachedPage]] = {}
        self._lock = threading.Lock()
        # Bumped on every notice: a page built across a notice is not kept.
        self._epoch = 0
        self._listening = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Notified by `stop`, so the listener stops at once rather than at its next timeout.
        self._wake_channel = f"tracefin_page_cache_{secrets.token_hex(6)}"

    @property
    def listening(self) -> bool:
        return self._listening

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._pages

    def page(
        self, conn: Conn, key: Hashable, build: Callable[[Conn], tuple[dict[str, Any], bool]]
    ) -> CachedPage:
        """The page under `key`: the cached one if still current, else `build(conn)`, which
        also says whether the page may be kept (not when part of it could not be checked)."""
        current = log_store.page_generation(conn)
        with self._lock:
            epoch = self._epoch
            cached = self._pages.get(key)
        if cached is not None and cached[0] == current:
            return cached[1]
        data, keep = build(conn)
        page = CachedPage(data)
        with self._lock:
            if keep and self._listening and self._epoch == epoch:
                if len(self._pages) >= _MAX_PAGES:
                    self._pages.clear()
                self._pages[key] = (current, page)
        return page

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._pages.clear()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name="page-cache", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._listening:
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=2) as conn:
                    log_store.wake(conn, self._wake_channel)
            except psycopg.Error:
                pass  # the listener stops at its next timeout (1 s) instead
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._set_listening(False)

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._listening = listening
            self._epoch += 1
            self._pages.clear()

    def _listen(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    log_store.listen_for_page_changes(conn, self._wake_channel)
                    self._set_listening(True)
                    delay = 0.5
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            if notice.channel == self._wake_channel:
                                break  # told to stop
                            self.clear()
            except psycopg.Error as exc:
                log.warning("page cache listener lost the database (%s); not caching", exc)
            self._set_listening(False)
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)
