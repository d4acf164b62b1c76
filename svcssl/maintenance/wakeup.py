"""When the maintenance run must run next, and why: the earliest moment any certificate becomes due.

Candidates, later than ``now``: the daily ``[maintenance] schedule``; per service certificate its renewal
moment (the stored ARI moment, else the lifetime fraction — the assessment's own ``renewal_moment``), the
moment an expiry mail would be due (a certificate from another CA reaching the notify days, a renewal becoming
overdue) and its expiry; and the end of an order back-off while something waits on it. The scheduler under
``svcssl serve`` plans a one-off run at that moment; ``svcssl maintenance next`` and the Maintenance page show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.cron import CronTrigger

from ..operations.assessment import SHORT_LIVED, CertificateFacts, Thresholds, renewal_moment
from ..operations.context import Context
from ..operations.hostname_certificate import backoff_in_force
from ..operations.inventory import list_services

SOON = timedelta(seconds=30)  # never plan a run closer than this to now


@dataclass(frozen=True)
class Wakeup:
    at: datetime  # aware UTC
    reason: str  # e.g. "exim: ARI window opens 2026-12-07 04:10 UTC"
    service: str | None = None  # None for the daily schedule and the back-off

    @property
    def scheduled(self) -> bool:
        """Just the daily run: nothing is due before it."""
        return self.service is None and self.reason.startswith("the daily check")

    def to_dict(self) -> dict:
        return {"at": self.at.isoformat(timespec="seconds"), "reason": self.reason, "service": self.service}


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def daily_run(schedule: str, now: datetime) -> datetime:
    """The next fire time of the cron schedule after ``now``."""
    return CronTrigger.from_crontab(schedule, timezone=timezone.utc).get_next_fire_time(None, now)


def _candidates(ctx: Context, now: datetime) -> list[Wakeup]:
    thresholds = Thresholds.from_settings(ctx.settings)
    found = [Wakeup(daily_run(ctx.settings.maintenance.schedule, now),
                    f"the daily check ({ctx.settings.maintenance.schedule} UTC)")]
    statuses = [s for s in list_services(ctx) if s.service.kind != "apns" and s.installed is not None]
    due_now = []
    for status in statuses:
        name, info = status.service.name, status.installed.info
        facts = status.facts or CertificateFacts()
        moment = renewal_moment(info, facts, thresholds)
        if moment.ari:
            found.append(Wakeup(moment.at, f"{name}: the moment chosen in its ARI window "
                                           f"({_when(facts.renewal_window[0])} to {_when(facts.renewal_window[1])}) "
                                           f"comes {_when(moment.at)}", name))
        else:
            found.append(Wakeup(moment.at, f"{name}: renewal due {_when(moment.at)} ({moment.why})", name))
        if moment.at <= now and status.assessment.due:
            due_now.append(name)
        lifetime = info.not_after - info.not_before
        if facts.from_own_ca:
            limit = lifetime / 3 if lifetime < SHORT_LIVED else timedelta(days=thresholds.notify_days)
            found.append(Wakeup(info.not_after - limit, f"{name}: its renewal becomes overdue "
                                                        f"{_when(info.not_after - limit)} (mail if it failed)", name))
        else:
            notify = info.not_after - timedelta(days=thresholds.notify_days)
            found.append(Wakeup(notify, f"{name}: expiry mail threshold ({thresholds.notify_days} days) "
                                        f"{_when(notify)}", name))
        found.append(Wakeup(info.not_after, f"{name}: expires {_when(info.not_after)}", name))
    waiting = backoff_in_force(ctx, now)
    if waiting is not None and due_now:
        found.append(Wakeup(waiting.next_attempt_at, f"{', '.join(due_now)}: the order back-off ends "
                                                     f"{_when(waiting.next_attempt_at)}"))
    return found


def next_wakeup(ctx: Context, now: datetime | None = None) -> Wakeup:
    """The next moment the maintenance run has work, with the reason (the daily check when nothing is sooner)."""
    now = now or ctx.now()
    upcoming = [w for w in _candidates(ctx, now) if w.at > now]  # what is past, the run that just ended has seen
    best = min(upcoming, key=lambda w: (w.at, w.service is None))
    return best if best.at >= now + SOON else Wakeup(now + SOON, best.reason, best.service)
