"""SQL reading telemetry back for people: a site's temperature history, bucketed in time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.rows import class_row

from records.db import Conn


@dataclass(frozen=True)
class SiteWindow:
    """A site (13-digit GLN) and the time the goods were there: [since, until)."""

    gln: str
    since: datetime
    until: datetime


@dataclass(frozen=True)
class TemperatureBucket:
    """The temperature readings at one site within one bucket of time."""

    gln: str
    start: datetime
    low: float
    high: float
    mean: float
    readings: int


def temperature_buckets(
    conn: Conn, windows: Sequence[SiteWindow], bucket: timedelta
) -> list[TemperatureBucket]:
    """The temperature at each site during its window, in buckets of `bucket` aligned to the
    epoch, by site window then time. A reading describes a site only from a device bound to it
    (`epcis.authority.reading_counts`), whoever else reports.

    The one place the product page reads telemetry: a continuous aggregate can replace this
    query without the page knowing.
    """
    if not windows:
        return []
    with conn.cursor(row_factory=class_row(TemperatureBucket)) as cursor:
        return cursor.execute(
            "SELECT w.gln,"
            " date_bin(%(bucket)s, t.time, 'epoch'::timestamptz) AS start,"
            " min(t.value) AS low, max(t.value) AS high, avg(t.value) AS mean,"
            " count(*)::int AS readings"
            " FROM unnest(%(glns)s::text[], %(since)s::timestamptz[], %(until)s::timestamptz[])"
            "  WITH ORDINALITY AS w(gln, since, until, n)"
            " JOIN device_sites ds ON ds.gln = w.gln"
            " JOIN telemetry t ON t.org_id = ds.org_id AND t.device_id = ds.device_id"
            "  AND t.metric = 'temperature' AND t.time >= w.since AND t.time < w.until"
            " GROUP BY w.n, w.gln, 2 ORDER BY w.n, 2",
            {
                "bucket": bucket,
                "glns": [window.gln for window in windows],
                "since": [window.since for window in windows],
                "until": [window.until for window in windows],
            },
        ).fetchall()
