"""The operations Context of the current request (one Store per server thread)."""

from __future__ import annotations

import threading

from flask import current_app, g

from ..operations.context import Context
from ..operations.inventory import list_services
from ..store import Store


class StorePool:
    """One Store (SQLite connection) per thread, opened on first use, and again once the database file was
    replaced (``svcssl state restore`` while the panel runs)."""

    def __init__(self, state_dir, keep_snapshots: int = 7):
        self._state_dir = state_dir
        self._keep = keep_snapshots
        self._local = threading.local()

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is not None and not store.is_current():
            store.close()
            store = None
        if store is None:
            store = self._local.store = Store(self._state_dir, keep_snapshots=self._keep)
        return store


def context() -> Context:
    if "svcssl_context" not in g:
        ext = current_app.extensions["svcssl"]
        g.svcssl_context = Context(settings=ext.settings, store=ext.stores.get(), clock=ext.clock)
    return g.svcssl_context


def service_statuses():
    """The enabled services' statuses, read once per request (the table and the banner share them)."""
    if "svcssl_statuses" not in g:
        g.svcssl_statuses = list_services(context())
    return g.svcssl_statuses
