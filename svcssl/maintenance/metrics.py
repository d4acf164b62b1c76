"""What svcssl knows, as Prometheus metrics (the text exposition format, written by prometheus-client).

A scrape reads state only — the services' files, the store's assessment inputs, the last maintenance runs,
the last probe of each port (kept by whatever probed last: `svcssl serve`'s probe job, the table,
`svcssl list`/`check`) and the audit log's counts. It never probes a port, asks DNS or contacts the CA, so
it stays cheap however often Prometheus comes.

Names follow Prometheus' naming rules and, for certificates, the x509-certificate-exporter's labels
(``subject_cn``, ``issuer_cn``, ``serial_number`` in decimal).
"""

from __future__ import annotations

from datetime import timezone
from typing import Iterator

from apscheduler.triggers.cron import CronTrigger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .. import __version__
from ..operations.assessment import VERDICTS
from ..operations.context import Context
from ..operations.inventory import ServiceStatus, list_services
from ..operations.livecheck import MATCH, SERVED_CHAIN
from .run import ACME_ORDER

__all__ = ["CONTENT_TYPE", "exposition"]
CONTENT_TYPE = CONTENT_TYPE_LATEST
SERVICE = ["service", "kind"]
CERTIFICATE = [*SERVICE, "subject_cn", "issuer_cn", "serial_number"]


def _serial_number(serial_hex: str) -> str:
    return str(int(serial_hex, 16))


class StateCollector:
    """One scrape's metrics, read from ``ctx`` when prometheus-client collects."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        statuses = list_services(ctx)
        yield from self._certificates(statuses)
        yield from self._probes(statuses)
        yield from self._maintenance()
        yield from self._counts(statuses)
        build = GaugeMetricFamily("svcssl_build_info", "svcssl's version; always 1.", labels=["version"])
        build.add_metric([__version__], 1)
        yield build

    def _certificates(self, statuses: list[ServiceStatus]) -> Iterator[Metric]:
        not_after = GaugeMetricFamily("svcssl_certificate_not_after_timestamp_seconds",
                                      "When the service's installed certificate expires (Unix time).", labels=CERTIFICATE)
        not_before = GaugeMetricFamily("svcssl_certificate_not_before_timestamp_seconds",
                                       "When the service's installed certificate becomes valid (Unix time).",
                                       labels=CERTIFICATE)
        verdict = GaugeMetricFamily("svcssl_certificate_verdict",
                                    "1 for the current verdict of the service's certificate (the assessment the "
                                    "panel, the CLI and the maintenance run show), 0 for the others.",
                                    labels=[*SERVICE, "verdict"])
        reason = GaugeMetricFamily("svcssl_certificate_reason",
                                   "1 for each reason code of the current assessment of the service's certificate.",
                                   labels=[*SERVICE, "code"])
        for status in statuses:
            service = [status.service.name, status.service.kind]
            info = status.info
            if info is not None:
                labels = [*service, info.subject_cn or "", info.issuer_value("commonName") or "",
                          _serial_number(info.serial)]
                not_after.add_metric(labels, info.not_after.timestamp())
                not_before.add_metric(labels, info.not_before.timestamp())
            current = status.assessment.verdict
            for name in (*VERDICTS, *(() if current in VERDICTS else (current,))):
                verdict.add_metric([*service, name], 1 if name == current else 0)
            for code in dict.fromkeys(status.assessment.codes):
                reason.add_metric([*service, code], 1)
        yield from (not_after, not_before, verdict, reason)

    def _probes(self, statuses: list[ServiceStatus]) -> Iterator[Metric]:
        matches = GaugeMetricFamily("svcssl_served_certificate_matches",
                                    "1 when the service's port served the certificate in its files at the last probe, "
                                    "0 when it served another one, could not be reached, or the files were changed "
                                    "outside svcssl.", labels=SERVICE)
        probed = GaugeMetricFamily("svcssl_probe_timestamp_seconds", "When the service's port was last probed "
                                   "(Unix time).", labels=SERVICE)
        probes = self.ctx.store.last_probes()
        for status in statuses:
            probe = probes.get(status.service.name)
            if probe is None:
                continue
            service = [status.service.name, status.service.kind]
            matches.add_metric(service, 1 if probe.state in (MATCH, SERVED_CHAIN) else 0)
            probed.add_metric(service, probe.probed_at.timestamp())
        yield from (matches, probed)

    def _maintenance(self) -> Iterator[Metric]:
        ctx = self.ctx
        last, last_ok = ctx.store.last_run_times()
        if last is not None:
            yield GaugeMetricFamily("svcssl_maintenance_last_run_timestamp_seconds",
                                    "When the last maintenance run (not a dry run) finished (Unix time).",
                                    value=last.finished_at.timestamp())
            yield GaugeMetricFamily("svcssl_maintenance_run_duration_seconds", "How long the last maintenance run "
                                    "took.", value=(last.finished_at - last.started_at).total_seconds())
        if last_ok is not None:
            yield GaugeMetricFamily("svcssl_maintenance_last_success_timestamp_seconds",
                                    "When the last maintenance run that ended well finished (Unix time).",
                                    value=last_ok.timestamp())
        trigger = CronTrigger.from_crontab(ctx.settings.maintenance.schedule, timezone=timezone.utc)
        upcoming = trigger.get_next_fire_time(None, ctx.now())
        if upcoming is not None:
            yield GaugeMetricFamily("svcssl_maintenance_next_run_timestamp_seconds",
                                    "When `svcssl serve` next runs the maintenance on its schedule (Unix time).",
                                    value=upcoming.timestamp())

    def _counts(self, statuses: list[ServiceStatus]) -> Iterator[Metric]:
        store = self.ctx.store
        orders = store.action_counts(ACME_ORDER)
        ordered = CounterMetricFamily("svcssl_acme_orders", "Hostname certificate orders over ACME, by result.",
                                      labels=["result"])
        ordered.add_metric(["issued"], orders.get("ok", 0))
        ordered.add_metric(["failed"], orders.get("failed", 0))
        yield ordered
        counts = store.deploy_counts()
        names = dict.fromkeys([*(s.service.name for s in statuses), *(service for service, _ in counts)])
        deploys = CounterMetricFamily("svcssl_deploys", "Certificates deployed to a service (install, reset, "
                                      "rollback, renewal), by result.", labels=["service", "result"])
        rollbacks = CounterMetricFamily("svcssl_rollbacks", "Deploys that failed and were rolled back to the "
                                        "previous certificate.", labels=["service"])
        for name in names:
            rolled_back = counts.get((name, "rolled back"), 0)
            deploys.add_metric([name, "ok"], counts.get((name, "ok"), 0))
            deploys.add_metric([name, "failed"], counts.get((name, "failed"), 0) + rolled_back)
            rollbacks.add_metric([name], rolled_back)
        yield from (deploys, rollbacks)


def exposition(ctx: Context) -> bytes:
    """The scrape's body in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(ctx))
    return generate_latest(registry)
