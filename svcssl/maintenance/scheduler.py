"""APScheduler inside `svcssl serve` only: the maintenance run on its cron schedule, one at a time."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..errors import LockTimeoutError
from ..operations.browse import REFRESH_INTERVAL, refresh_index
from ..operations.context import open_context
from ..operations.livecheck import check_services
from ..settings import Settings
from .run import run_maintenance

log = logging.getLogger(__name__)


def scheduled_run(settings: Settings) -> None:
    ctx = open_context(settings)
    try:
        report = run_maintenance(ctx, trigger="schedule")
        log.info("scheduled maintenance run: %s", "ok" if report.ok else "needs attention")
    except LockTimeoutError as exc:
        log.info("scheduled maintenance run skipped: %s", exc.message)
    except Exception:  # never let the scheduler thread die
        log.exception("scheduled maintenance run failed")
    finally:
        ctx.store.close()


def scheduled_index_refresh(settings: Settings) -> None:
    """The discovery index (accounts' SSL storage, Apache, CA directories): a stat per file, a parse per change."""
    ctx = open_context(settings)
    try:
        refresh_index(ctx, lock_timeout=1.0)
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


def start_scheduler(settings: Settings) -> BackgroundScheduler:
    trigger = CronTrigger.from_crontab(settings.maintenance.schedule, timezone=timezone.utc)  # checked at load
    scheduler = BackgroundScheduler(timezone=timezone.utc)
    scheduler.add_job(scheduled_run, trigger, args=(settings,), id="maintenance", name="svcssl maintenance run",
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
    return scheduler
