"""The state directory and its SQLite index."""

from .state import AuditEntry, HistoryEntry, Store  # noqa: F401
