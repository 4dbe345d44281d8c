"""A lot's cold chain for people: where it stayed, at what temperature, and when it left its range.

Pure: the stays come from the page's events, the temperatures from
`records.telemetry_store.temperature_buckets`, the allowed range from the product.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

_SITE = re.compile(r"^https://id\.gs1\.org/414/(\d{13})(?:/|$)")
# Dispositions after which the goods are no longer at the place of the event.
_GONE = frozenset({"in_transit", "retail_sold", "destroyed", "dispensed", "disposed"})
# The chart's resolution: the finest bucket that keeps a lot's life under MAX_BUCKETS points,
# so a page stays small however long the goods were kept.
BUCKETS = tuple(timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 360, 720, 1440, 2880, 10080))
MAX_BUCKETS = 96


@dataclass(frozen=True)
class Stay:
    """The goods at a site (13-digit GLN) from `since` until `until` (None: still there)."""

    gln: str
    since: datetime
    until: datetime | None


@dataclass(frozen=True)
class Bucket:
    """The readings at a site within one bucket of time (`records.telemetry_store`'s rows)."""

    gln: str
    start: datetime
    low: float
    high: float
    mean: float


@dataclass(frozen=True)
class Excursion:
    """Consecutive buckets at one site with a reading outside the allowed range."""

    gln: str
    start: datetime
    end: datetime
    extreme: float  # the reading furthest outside the range

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


def site_of(location: str | None) -> str | None:
    """The 13-digit GLN of a site's Digital Link (`https://id.gs1.org/414/…`), else None."""
    match = _SITE.match(location or "")
    return match.group(1) if match else None


def stays(events: Sequence[Mapping[str, Any]]) -> list[Stay]:
    """Where the goods were, from the page's events in time order.

    Only events that count as evidence and are not failed place the goods: an unattested
    claim must not move them out of a warm room, nor into a cold one. A stay lasts from the
    first event at a site until the next event elsewhere, or until an event there that sends
    them away (shipped, sold); the last one is open unless they were sent away.
    """
    placed = [
        (site_of(event.get("biz_location")), event)
        for event in events
        if event.get("evidence") == "counts"
        and event.get("verification", {}).get("state") != "failed"
    ]
    result: list[Stay] = []
    current: tuple[str, datetime] | None = None
    for gln, event in placed:
        time: datetime = event["event_time"]
        if gln is None:
            continue
        if current is not None and current[0] != gln:
            result.append(Stay(current[0], current[1], time))
            current = None
        if current is None:
            current = (gln, time)
        if event.get("disposition") in _GONE:
            result.append(Stay(gln, current[1], time))
            current = None
    if current is not None:
        result.append(Stay(current[0], current[1], None))
    return [stay for stay in result if stay.until is None or stay.until > stay.since]


def bucket_size(span: timedelta) -> timedelta:
    """The finest of BUCKETS that shows `span` in at most MAX_BUCKETS buckets."""
    for size in BUCKETS:
        if span <= size * MAX_BUCKETS:
            return size
    return BUCKETS[-1]


def _out(value: float, low: float | None, high: float | None) -> bool:
    return (low is not None and value < low) or (high is not None and value > high)


def excursions(
    buckets: Sequence[Bucket], size: timedelta, low: float | None, high: float | None
) -> list[Excursion]:
    """Runs of adjacent buckets at one site with any reading out of [low, high], at the chart's
    resolution (a bucket without readings ends a run: nothing says what happened then)."""

    def distance(value: float) -> float:
        if low is not None and value < low:
            return low - value
        return value - high if high is not None else 0.0

    found: list[Excursion] = []
    run: list[Bucket] = []

    def close() -> None:
        if run:
            extremes = [value for b in run for value in (b.low, b.high) if _out(value, low, high)]
            worst = max(extremes, key=distance)
            found.append(Excursion(run[0].gln, run[0].start, run[-1].start + size, worst))
            run.clear()

    for bucket in buckets:
        out = _out(bucket.low, low, high) or _out(bucket.high, low, high)
        adjacent = bool(run) and run[-1].gln == bucket.gln and run[-1].start + size == bucket.start
        if not out or not adjacent:
            close()
        if out:
            run.append(bucket)
    close()
    return found
