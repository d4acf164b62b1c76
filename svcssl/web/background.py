"""A job the panel starts in the background (Run now, Refresh the index): one at a time, with its own Store."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

from flask import current_app

from ..errors import SvcsslError
from ..operations.context import Context, open_context

log = logging.getLogger(__name__)

# work(context of the job's own thread, progress callback) -> an error message for the page, or None
Work = Callable[[Context, Callable[[str], None]], "str | None"]


@dataclass
class BackgroundJob:
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = False
    lines: list[str] = field(default_factory=list)  # progress, as it comes
    error: str | None = None

    def start(self, ctx: Context, work: Work) -> bool:
        """Start ``work`` unless this job is running already; False then."""
        with self.lock:
            if self.running:
                return False
            self.running, self.lines, self.error = True, [], None
        threading.Thread(target=self._run, args=(ctx, work), name=f"svcssl-{self.name}", daemon=True).start()
        return True

    def _run(self, ctx: Context, work: Work) -> None:
        own = open_context(ctx.settings, ctx.clock)  # a store (SQLite connection) of this thread's own
        try:
            self.error = work(own, self.lines.append)
        except SvcsslError as exc:
            self.error = exc.message
        except Exception as exc:  # reported on the page and in the log, never a crash
            log.exception("%s from the panel failed", self.name)
            self.error = f"The {self.name} failed unexpectedly: {exc}"
        finally:
            own.store.close()
            with self.lock:
                self.running = False


def background_job(name: str) -> BackgroundJob:
    """The app's job of that name (one per panel process)."""
    return current_app.extensions["svcssl"].extra.setdefault(f"job:{name}", BackgroundJob(name))
