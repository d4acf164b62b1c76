"""APScheduler inside `svcssl serve` only: the maintenance run on its cron schedule, one at a time, and a
one-off run at the next moment work is due (``wakeup.next_wakeup``), planned again after every run."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..errors import FileSystemError, LockTimeoutError
from ..operations.browse import REFRESH_INTERVAL, refresh_index
from ..operations.context import open_context
from ..operations.livecheck import check_services
from ..settings import Settings
from .run import run_maintenance
from .wakeup import Wakeup, next_wakeup

log = logging.getLogger(__name__)
WAKEUP_JOB = "maintenance-wakeup"
_running: BaseScheduler | None = None  # the scheduler of `svcssl serve` in this process, for replan_after_run


def scheduled_run(settings: Settings, scheduler: BaseScheduler | None = None, trigger: str = "schedule") -> None:
    ctx = open_context(settings)
    try:
        report = run_maintenance(ctx, trigger=trigger)
        log.info("%s maintenance run: %s", trigger, "ok" if report.ok else "needs attention")
    except LockTimeoutError as exc:
        log.info("%s maintenance run skipped: %s", trigger, exc.message)
    except FileSystemError as exc:
        log.warning("%s maintenance run failed: %s", trigger, exc.message)
    except Exception:  # never let the scheduler thread die
        log.exception("%s maintenance run failed", trigger)
    finally:
        ctx.store.close()
    if scheduler is not None:
        plan_wakeup(scheduler, settings)


def wakeup_job(scheduler: BaseScheduler) -> Job | None:
    """The one-off run planned for the next moment work is due, if any."""
    return next((job for job in scheduler.get_jobs() if job.id.startswith(WAKEUP_JOB)), None)


def plan_wakeup(scheduler: BaseScheduler, settings: Settings) -> Wakeup | None:
    """Plan a one-off run at the next moment work is due, when that is before the daily run; None on trouble."""
    ctx = open_context(settings)
    try:
        wake = next_wakeup(ctx)
    except Exception:  # never let the scheduler thread die
        log.exception("cannot work out the next maintenance run")
        return None
    finally:
        ctx.store.close()
    if scheduler.state == STATE_STOPPED:  # shutting down: shutdown(wait=True) holds the job-store lock while it
        return None  # waits for this very job, so touching the jobs now would never return
    for job in scheduler.get_jobs():  # one planned wake-up at a time (each has its own id: no race with the
        if job.id.startswith(WAKEUP_JOB):  # scheduler removing the one that is running now)
            job.remove()
    if wake.scheduled:
        log.info("next maintenance run: %s (%s)", wake.at, wake.reason)
        return wake
    scheduler.add_job(scheduled_run, DateTrigger(wake.at, timezone=timezone.utc), args=(settings, scheduler, "wakeup"),
                      id=f"{WAKEUP_JOB}-{wake.at.timestamp():.0f}", name=f"svcssl maintenance run: {wake.reason}",
                      max_instances=1, coalesce=True, misfire_grace_time=3600)
    log.info("next maintenance run: %s, because %s", wake.at, wake.reason)
    return wake


def scheduled_index_refresh(settings: Settings) -> None:
    """The discovery index (accounts' SSL storage, Apache, CA directories): a stat per file, a parse per change."""
    ctx = open_context(settings)
    try:
        refresh_index(ctx, lock_timeout=1.0)
    except FileSystemError as exc:  # a full disk: the index keeps what it knew; said once per attempt, no trace
        log.warning("index refresh skipped: %s", exc.message)
    except Exception:  # never let the scheduler thread die
        log.exception("scheduled index refresh failed")
    finally:
        ctx.store.close()


def scheduled_probe(settings: Settings) -> None:
    """What each port serves, kept in the store for /metrics (a scrape never probes)."""
    ctx = open_context(settings)
    try:
        check_services(ctx)
    except Exception:  # never let the scheduler thread die
        log.exception("scheduled probe failed")
    finally:
        ctx.store.close()


def replan_after_run(settings: Settings) -> None:
    """After a run started elsewhere in this process (the panel's Run now): plan the next wake-up again."""
    if _running is not None and _running.running:
        plan_wakeup(_running, settings)


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    trigger = CronTrigger.from_crontab(settings.maintenance.schedule, timezone=timezone.utc)  # checked at load
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.add_job(scheduled_run, trigger, args=(settings, scheduler), id="maintenance", name="svcssl maintenance run",
                      max_instances=1, coalesce=True, misfire_grace_time=3600)
    scheduler.add_job(scheduled_index_refresh, IntervalTrigger(seconds=REFRESH_INTERVAL, timezone=timezone.utc),
                      args=(settings,), id="index", name="svcssl index refresh", max_instances=1, coalesce=True,
                      next_run_time=datetime.now(timezone.utc))  # and once right away, as the panel starts
    if settings.metrics.probe_interval:
        scheduler.add_job(scheduled_probe, IntervalTrigger(seconds=settings.metrics.probe_interval,
                                                           timezone=timezone.utc),
                          args=(settings,), id="probe", name="svcssl probe of every port", max_instances=1,
                          coalesce=True, next_run_time=datetime.now(timezone.utc))
    scheduler.start()
    job = scheduler.get_job("maintenance")
    log.info("maintenance run scheduled (%s UTC); next at %s", settings.maintenance.schedule, job.next_run_time)
    global _running
    _running = scheduler
    scheduler.add_job(plan_wakeup, "date", run_date=datetime.now(timezone.utc), args=(scheduler, settings),
                      id="wakeup-plan", name="svcssl: plan the next wake-up")  # in its thread: serve starts at once
    return scheduler
