"""The state directory and its SQLite index."""

from .state import AuditEntry, HistoryEntry, LoginFailures, OrderBackoff, RunRecord, Store, TokenRecord, UserRecord  # noqa: F401
