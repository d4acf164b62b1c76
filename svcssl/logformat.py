"""Log lines for a terminal and for journald: one line per action, no timestamps of our own.

Under systemd, stderr is a stream to journald (systemd sets JOURNAL_STREAM to its device and
inode). Then each line starts with a syslog priority prefix such as ``<4>``, which journald turns
into the entry's priority (``journalctl -p warning`` works), and journald adds the time, host and
unit itself. Elsewhere a line reads ``svcssl: WARNING: message``. Neither format adds a timestamp.
"""

from __future__ import annotations

import logging
import os
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error", "critical")

# logging level -> syslog priority (RFC 5424): debug 7, info 6, warning 4, error 3, critical 2
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>message``; every line of a multi-line message (a traceback) keeps the priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def stream_is_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journald stream systemd connected (JOURNAL_STREAM=dev:inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def configure_logging(level: str, stream: TextIO) -> None:
    """Send svcssl's and its libraries' log records at ``level`` and above to ``stream``.

    Like logging.basicConfig, it leaves an already configured root logger alone (tests capture logs).
    """
    handler = logging.StreamHandler(stream)
    if stream_is_journal(stream):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("svcssl: %(levelname)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


def error_prefix(stream: TextIO) -> str:
    """``<3>`` (error) before a message printed straight to ``stream`` when that is the journal, else nothing."""
    return "<3>" if stream_is_journal(stream) else ""
