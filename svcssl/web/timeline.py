"""Geometry of the lifetime timeline: each certificate's validity window against today (rendered as SVG)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..x509.inspect import CertificateInfo

WIDTH = 200.0


@dataclass(frozen=True)
class Timeline:
    bar_x: float
    bar_width: float
    today_x: float
    elapsed_fraction: float  # how much of the lifetime has passed, 0..1
    label: str  # for screen readers


def timeline_for(info: CertificateInfo, now: datetime, start: datetime | None = None, end: datetime | None = None) -> Timeline:
    """Place ``info``'s window on an axis from ``start`` to ``end`` (default: the window itself, with today on it)."""
    start = start or min(info.not_before, now - timedelta(days=1))
    end = end or max(info.not_after, now + timedelta(days=1))
    span = max((end - start).total_seconds(), 1.0)

    def x(moment: datetime) -> float:
        return round(max(0.0, min(1.0, (moment - start).total_seconds() / span)) * WIDTH, 1)

    lifetime = max((info.not_after - info.not_before).total_seconds(), 1.0)
    elapsed = max(0.0, min(1.0, (now - info.not_before).total_seconds() / lifetime))
    bar_x = x(info.not_before)
    label = (f"Valid from {info.not_before:%Y-%m-%d} to {info.not_after:%Y-%m-%d}; "
             f"{elapsed:.0%} of its lifetime has passed")
    return Timeline(bar_x, max(1.0, x(info.not_after) - bar_x), x(now), round(elapsed, 3), label)
