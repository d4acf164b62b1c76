"""The state directory and its SQLite index."""

from .state import AuditEntry, HistoryEntry, LoginAttempt, OrderBackoff, RunRecord, Store, TokenRecord, UserRecord  # noqa: F401
