"""`svcssl check --nagios`: one line in the Monitoring Plugins format, for Nagios, Icinga, Naemon, Sensu.

    SVCSSL WARNING - exim expires in 5 days | cpanel=60d;20:;3: dovecot=60d;20:;3: exim=5d;20:;3: ftp=60d;20:;3:

Exit codes are the plugin API's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the configuration cannot be read,
the state directory is missing, or the check did not finish within --timeout). The performance data gives
each service's days left with its thresholds in the plugin range syntax ("20:" alerts below 20). It reads
the state and probes each port as `svcssl check` does, and writes nothing but the probes' results.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError, SvcsslError
from ..operations.context import open_context
from ..operations.inventory import ServiceStatus, service_status
from ..operations.livecheck import DIFFERS, DRIFT, UNREACHABLE, LiveCheck, check_statuses
from ..settings import Settings, load_settings
from ..statedir import StateLayout
from .command import Invocation

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
WORDS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
CRITICAL_CODES = ("expired", "revoked", "unreadable", "not-yet-valid")  # clients refuse the certificate now
DEFAULT_TIMEOUT = 10.0  # seconds, for the whole check
PLAIN_LABEL = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Finding:
    service: str
    state: int
    text: str


@dataclass(frozen=True)
class PluginResult:
    state: int
    line: str


def _judge(status: ServiceStatus, live: LiveCheck | None, now: datetime, warning: int,
           critical: int) -> list[Finding]:
    """What is wrong with one service, each with its plugin state."""
    name = status.service.name
    found: list[Finding] = []
    assessment = status.assessment
    info = status.info
    codes = set(assessment.codes)
    if info is None:
        found.append(Finding(name, CRITICAL, f"{name} has no usable certificate"))
    else:
        days = info.days_left(now)
        if info.not_after <= now:
            found.append(Finding(name, CRITICAL, f"{name} expired on {info.not_after:%Y-%m-%d}"))
        elif days < critical:
            found.append(Finding(name, CRITICAL, f"{name} expires in {days} days"))
        elif days < warning:
            found.append(Finding(name, WARNING, f"{name} expires in {days} days"))
        for code in sorted(codes & set(CRITICAL_CODES) - {"expired"}):
            found.append(Finding(name, CRITICAL, f"{name}: {code}"))
    if assessment.verdict not in ("ok", "renew-soon") and not codes & set(CRITICAL_CODES):
        found.append(Finding(name, WARNING, f"{name}: {assessment.verdict} ({', '.join(dict.fromkeys(assessment.codes))})"))
    if live is not None:
        if live.state == DIFFERS:
            found.append(Finding(name, WARNING, f"{name}'s port serves another certificate than its files hold"))
        elif live.state == DRIFT:
            found.append(Finding(name, WARNING, f"{name}'s files were changed outside svcssl"))
        elif live.state == UNREACHABLE:
            found.append(Finding(name, WARNING, f"{name}'s port does not answer ({live.detail})"))
    return found


def _perf_label(name: str) -> str:
    return name if PLAIN_LABEL.match(name) else "'" + name.replace("'", "''") + "'"


def plugin_result(statuses: list[ServiceStatus], live: dict[str, LiveCheck], now: datetime, *, warning: int,
                  critical: int) -> PluginResult:
    """The plugin's state and its one line of output for these services (pure: ``now`` is a parameter)."""
    findings = [f for s in statuses for f in _judge(s, live.get(s.service.name), now, warning, critical)]
    state = max((f.state for f in findings), default=OK)
    if findings:
        ordered = sorted(findings, key=lambda f: -f.state)
        text = "; ".join(f.text for f in ordered)
    elif statuses:
        soonest = min((s for s in statuses if s.info is not None), key=lambda s: s.info.not_after)
        text = (f"{len(statuses)} service{'s' if len(statuses) != 1 else ''} fine; the next to expire is "
                f"{soonest.service.name} in {soonest.info.days_left(now)} days")
    else:
        text = "no services are enabled"
    perf = []
    for status in statuses:
        days = f"{status.info.days_left(now)}d" if status.info is not None else "U"
        perf.append(f"{_perf_label(status.service.name)}={days};{warning}:;{critical}:")
    line = f"SVCSSL {WORDS[state]} - {text.replace('|', '/')}"
    return PluginResult(state, line + (" | " + " ".join(perf) if perf else ""))


def _unknown(text: str) -> PluginResult:
    return PluginResult(UNKNOWN, f"SVCSSL UNKNOWN - {text.replace('|', '/')}")


def _evaluate(invocation: Invocation, deadline: float) -> PluginResult:
    args = invocation.args
    try:
        settings: Settings = load_settings(invocation.config)
    except ConfigError as exc:
        return _unknown(f"configuration error: {exc.message}")
    warning = settings.notify.expiry_days if args.warning is None else args.warning
    critical = settings.maintenance.other_renew_days if args.critical is None else args.critical
    if critical > warning:
        return _unknown(f"--critical ({critical} days) must not be more than --warning ({warning} days)")
    database = StateLayout(settings.server.state_dir).database
    if not database.is_file():
        return _unknown(f"the state directory {settings.server.state_dir} is missing or holds no svcssl database: "
                        "has svcssl run on this server?")
    try:
        ctx = open_context(settings)
    except SvcsslError as exc:
        return _unknown(exc.message)
    try:
        services = ctx.services(args.service) if args.service else settings.enabled_services()
        statuses = [service_status(ctx, service) for service in services]
        probe_timeout = max(0.2, min(5.0, settings.deploy.probe_timeout, (deadline - time.monotonic()) / 2))
        live = {c.service: c for c in check_statuses(ctx, statuses, probe_timeout)}
        return plugin_result(statuses, live, ctx.now(), warning=warning, critical=critical)
    except SvcsslError as exc:
        return _unknown(exc.message)
    finally:
        ctx.store.close()


def run_plugin(invocation: Invocation) -> int:
    """Print the plugin's line and return its exit code; past --timeout, UNKNOWN at once (the process ends)."""
    timeout = invocation.args.timeout if invocation.args.timeout is not None else DEFAULT_TIMEOUT
    deadline = time.monotonic() + timeout
    results: list[PluginResult] = []

    def work() -> None:
        try:
            results.append(_evaluate(invocation, deadline))
        except Exception as exc:  # a plugin answers UNKNOWN, never a traceback
            results.append(_unknown(f"{type(exc).__name__}: {exc}"))

    worker = threading.Thread(target=work, name="svcssl check --nagios", daemon=True)
    worker.start()
    worker.join(timeout)
    if not results:
        print(_unknown(f"the check did not finish within {timeout:g} s").line, flush=True)
        sys.stderr.flush()
        os._exit(UNKNOWN)  # probe threads may still wait on a socket: do not wait for them
    print(results[0].line)
    return results[0].state
