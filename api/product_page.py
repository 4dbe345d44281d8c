"""The product page's extras: the cold chain (its data, its SVG chart's geometry) and its words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.cold_chain import Bucket, bucket_size, excursions, stays
from records import telemetry_store
from records.db import Conn
from records.telemetry_store import SiteWindow

# The chart's canvas (SVG user units; it scales to the card's width).
WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 24


def cold_chain(
    conn: Conn,
    events: Sequence[Mapping[str, Any]],
    low: Decimal | None,
    high: Decimal | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The lot's temperature over its stays at registered sites, bucketed, with its excursions
    out of [low, high]; None for goods without a temperature range or without a known stay."""
    if low is None and high is None:
        return None
    where = stays(events)
    if not where:
        return None
    windows = [SiteWindow(s.gln, s.since, s.until or now) for s in where]
    size = bucket_size(windows[-1].until - windows[0].since)
    rows = telemetry_store.temperature_buckets(conn, windows, size)
    buckets = [Bucket(r.gln, r.start, r.low, r.high, r.mean) for r in rows]
    low_f = float(low) if low is not None else None
    high_f = float(high) if high is not None else None
    names = {
        place["gln"]: place.get("name")
        for event in events
        if isinstance(place := event.get("place"), Mapping)
    }
    return {
        "min_c": low_f,
        "max_c": high_f,
        "bucket_minutes": int(size.total_seconds() // 60),
        # Still at a site: new readings arrive without a change the page cache hears of.
        "open": where[-1].until is None,
        "stays": [
            {"gln": w.gln, "name": names.get(w.gln), "since": w.since, "until": w.until}
            for w in windows
        ],
        "buckets": [
            {"gln": b.gln, "start": b.start, "low": b.low, "high": b.high, "mean": b.mean}
            for b in buckets
        ],
        "excursions": [
            {
                "gln": x.gln,
                "name": names.get(x.gln),
                "start": x.start,
                "end": x.end,
                "minutes": x.minutes,
                "extreme": x.extreme,
            }
            for x in excursions(buckets, size, low_f, high_f)
        ],
    }


@dataclass(frozen=True)
class Chart:
    """Coordinates for the template's inline SVG (numbers only: nothing here needs escaping)."""

    band: tuple[float, float, float, float] | None  # x, y, width, height of the allowed range
    lines: list[str]  # polyline points, one line per stay
    marks: list[tuple[float, float, float, float]]  # excursions: x, width, dot x, dot y
    y_labels: list[tuple[float, float]]  # (y, °C)
    x_labels: list[tuple[float, str, str]]  # (x, anchor, text)
    plot: tuple[float, float, float, float]  # x, y, width, height


def chart(cold: Mapping[str, Any]) -> Chart | None:
    """The SVG geometry of `cold_chain`'s data; None without a single reading."""
    buckets = cold["buckets"]
    if not buckets:
        return None
    size = timedelta(minutes=cold["bucket_minutes"])
    t0: datetime = cold["stays"][0]["since"]
    t1: datetime = max(
        cold["stays"][-1]["until"] or buckets[-1]["start"] + size, buckets[-1]["start"] + size
    )
    t0 = min(t0, buckets[0]["start"])
    bounds: list[float] = [v for v in (cold["min_c"], cold["max_c"]) if v is not None]
    values: list[float] = [b["low"] for b in buckets] + [b["high"] for b in buckets] + bounds
    v0, v1 = min(values) - 2.0, max(values) + 2.0
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(LEFT + width * (at - t0).total_seconds() / span, 1)

    def y(value: float) -> float:
        return round(TOP + height * (v1 - value) / (v1 - v0), 1)

    band = None
    if bounds:
        top = y(cold["max_c"]) if cold["max_c"] is not None else TOP
        bottom = y(cold["min_c"]) if cold["min_c"] is not None else TOP + height
        band = (LEFT, top, width, round(bottom - top, 1))
    lines: list[str] = []
    previous: Mapping[str, Any] | None = None
    for b in buckets:
        point = f"{x(b['start'] + size / 2)},{y(b['mean'])}"
        joined = previous is not None and previous["gln"] == b["gln"]
        if joined and previous is not None and b["start"] - previous["start"] <= size * 2:
            lines[-1] += " " + point
        else:
            lines.append(point)
        previous = b
    marks = [
        (
            x(e["start"]),
            max(round(x(e["end"]) - x(e["start"]), 1), 2.0),
            round((x(e["start"]) + x(e["end"])) / 2, 1),
            y(e["extreme"]),
        )
        for e in cold["excursions"]
    ]
    # The band's bounds and each excursion's worst reading, unless it would overprint one.
    labelled = sorted(set(bounds)) or [v0 + 2]
    for e in cold["excursions"]:
        if all(abs(y(e["extreme"]) - y(v)) >= 12 for v in labelled):
            labelled.append(e["extreme"])
    y_labels = [(y(v), v) for v in labelled]
    x_labels: list[tuple[float, str, str]] = [
        (LEFT, "start", f"{t0.astimezone(UTC):%m-%d %H:%M}"),
        (LEFT + width, "end", f"{t1.astimezone(UTC):%m-%d %H:%M} UTC"),
    ]
    return Chart(band, lines, marks, y_labels, x_labels, (LEFT, TOP, width, height))


def celsius(value: object) -> str:
    """-5.0 as "\u22125", -18.25 as "\u221218.3": a true minus sign, no needless decimals
    (anything but a number, as a device sent it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return text.replace("-", "\u2212")


def duration(minutes: int, texts: Mapping[str, Any]) -> str:
    """45 as "45 min", 135 as "2 h 15 min" (in the page's language)."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return str(texts["minutes"].format(m=rest))
    if not rest:
        return str(texts["hours"].format(h=hours))
    return str(texts["hours_minutes"].format(h=hours, m=rest))
