"""One way to say time, for every page, the CLI's text output and mail.

Durations are whole units rounded toward zero ("expires in 2 days" for 2.9 days, "expired 12 days
ago" for 12.2 days, hours under one day, minutes under one hour); moments always carry their zone
("2026-12-07 04:10 UTC"). `whole_days` is the one day count: `days_left` of a certificate, the
JSON's days_left and the sentences all come from it, so no page shows one figure two ways.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

DAY = 86400


def whole_days(delta: timedelta) -> int:
    """Whole days in ``delta``, rounded toward zero (-12.2 days → -12)."""
    seconds = delta.total_seconds()
    return int(seconds / DAY)


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def duration(delta: timedelta) -> str:
    """A length of time in its largest whole unit: "2 days", "5 hours", "1 minute", "less than a minute"."""
    seconds = abs(delta.total_seconds())
    if seconds >= DAY:
        return _count(int(seconds // DAY), "day")
    if seconds >= 3600:
        return _count(int(seconds // 3600), "hour")
    if seconds >= 60:
        return _count(int(seconds // 60), "minute")
    return "less than a minute"


def expiry(not_after: datetime, now: datetime) -> str:
    """ "expires in 2 days" / "expires in 5 hours" / "expired 12 days ago"."""
    delta = not_after - now
    if delta.total_seconds() >= 0:
        return f"expires in {duration(delta)}"
    return f"expired {duration(delta)} ago"


def relative(moment_: datetime, now: datetime) -> str:
    """ "in 5 hours" / "3 days ago"."""
    delta = moment_ - now
    return f"in {duration(delta)}" if delta.total_seconds() >= 0 else f"{duration(delta)} ago"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def moment(value: datetime | None, *, seconds: bool = False) -> str:
    """A moment with its zone: "2026-12-07 04:10 UTC" (stored times are UTC)."""
    if value is None:
        return "never"
    return _utc(value).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def day(value: datetime) -> str:
    """A calendar day, as the table shows expiry dates: "2026-12-07"."""
    return _utc(value).strftime("%Y-%m-%d")


def iso(value: datetime) -> str:
    """RFC 3339 for machines and for the browser's <time datetime=…>."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


_WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def cron_words(expression: str) -> str:
    """A cron line (the [maintenance] schedule, UTC) in words: "every day at 03:17 UTC". Lines this does not
    know how to say come back as themselves, marked as cron."""
    fields = expression.split()
    if len(fields) != 5:
        return f"on the cron schedule “{expression}” (UTC)"
    minute, hour, dom, month, dow = fields
    if dom == "*" and month == "*":
        if minute.isdigit() and hour.isdigit():
            at = f"{int(hour):02d}:{int(minute):02d} UTC"
            if dow == "*":
                return f"every day at {at}"
            if dow.isdigit() and int(dow) <= 7:
                return f"every {_WEEKDAYS[int(dow) % 7]} at {at}"
        if dow == "*" and minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit():
            return f"every {hour[2:]} hours, at minute {int(minute)}"
        if dow == "*" and hour == "*" and minute.startswith("*/") and minute[2:].isdigit():
            return f"every {minute[2:]} minutes"
        if dow == "*" and hour == "*" and minute.isdigit():
            return f"every hour, at minute {int(minute)}"
    return f"on the cron schedule “{expression}” (UTC)"
