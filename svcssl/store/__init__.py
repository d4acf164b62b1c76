"""The state directory and its SQLite index."""

from .state import AuditEntry, HistoryEntry, LoginFailures, OrderBackoff, RunRecord, Store, UserRecord  # noqa: F401
