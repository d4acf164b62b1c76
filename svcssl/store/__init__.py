"""The state directory and its SQLite index."""

from .state import AuditEntry, HistoryEntry, LoginAttempt, OrderBackoff, ProbeRecord, RunRecord, Store, TokenRecord, UserRecord  # noqa: F401
