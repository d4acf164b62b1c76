"""The state directory and its SQLite index."""

from .state import AuditEntry, HistoryEntry, LoginFailures, Store, UserRecord  # noqa: F401
