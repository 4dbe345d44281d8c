"""Event query benchmark: `GET /epcis/events` pages of 100 events from a store of 1 000 000.

In one run, on the local PostgreSQL, with `tracefin api` as a real process (one uvicorn worker):
(1) seeds N events (default 1 000 000) through the real capture code (`epcis.capture.capture`:
    validation, normalisation, hash, index columns) and the real COPY writer, in two
    processes: N/100 lots of 100 events each, two items per event, eventTime spread over 200
    days in ingest order, 10 sites per organisation; four large enterprises hold 24.75 % of
    the lots each and a small one 1 % (a store shared by many is where an index walk that
    filters as it goes, betting on finding a page soon, loses);
(2) shows the plan PostgreSQL chooses for each query shape (auto_explain, ANALYZE, BUFFERS),
    run through the route's own SQL (`records.event_query.query_events`);
(3) saturation: wrk on the bare route (/healthz, the same app's floor) and on the mix of the
    large enterprise's query shapes; req/s of both and their ratio;
(4) latency at a fixed arrival rate (default 100 req/s) for each query shape and for the bare
    route, from the open-loop generator of bench/http_load.py (latency from the scheduled send
    time, so no coordinated omission): p50 / p99 (target p99 <= 50 ms).
Every shape is checked first to answer 200 with exactly 100 events. Prints the figures and
writes them to bench/results/query-latest.json.

    .venv/bin/python bench/query.py [--events 1000000] [--seconds 20] [--rate 100]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import psycopg

from bench.common import ADMIN_URL, save_result
from bench.http_load import (
    get,
    ms,
    require_wrk,
    rounded,
    run_open_loop,
    run_wrk,
    start_api,
    stop,
    wait_healthy,
    wrk_figures,
)
from epcis.capture import DeviceKey, capture
from epcis.identifiers import check_digit
from epcis.query import parse_event_query
from records import event_store, registry_store
from records.event_query import query_events
from records.event_store import EventToStore
from tracefin.embedded import free_port
from tracefin.schema import scratch_database

ORGS = 4  # large enterprises, a quarter of the lots each, but for
SMALL_ORG = ORGS  # a fifth, small one: one lot in 100 (so 1% of the events)
EVENTS_PER_LOT = 100
SITES_PER_ORG = 10
CHUNK = 5_000  # events per capture call and per COPY transaction
PAGE = 100
DAYS = 200
STEPS = (
    ("inspecting", "conformant"),
    ("storing", "in_progress"),
    ("stocking", "sellable_not_accessible"),
    ("holding", "sellable_not_accessible"),
    ("loading", "in_progress"),
    ("shipping", "in_transit"),
    ("departing", "in_transit"),
    ("arriving", "in_transit"),
    ("receiving", "in_progress"),
)
# The API never runs a chain call on these routes; the setting must still name a node.
UNUSED_RPC = "http://127.0.0.1:9"


def _gtin(lot: int) -> str:
    body = f"00614141{lot // 10 % 100_000:05d}"  # indicator 0, company prefix, item reference
    return body + check_digit(body)


def _gln(org: int, site: int) -> str:
    body = f"061414{org:01d}{site:05d}"
    return body + check_digit(body)


def org_of(lot: int) -> int:
    return SMALL_ORG if lot % 100 == 99 else lot % ORGS


def _lot_class(lot: int) -> str:
    return f"https://id.gs1.org/01/{_gtin(lot)}/10/L{lot:07d}"


def _site_uri(org: int, site: int) -> str:
    return f"https://id.gs1.org/414/{_gln(org, site)}"


@dataclass(frozen=True)
class Layout:
    """Where event number `n` (in ingest order) belongs: step `n // lots` of lot `n % lots`."""

    events: int
    start: datetime

    @property
    def lots(self) -> int:
        return self.events // EVENTS_PER_LOT

    @property
    def spacing(self) -> timedelta:
        return timedelta(days=DAYS) / self.events

    def time_of(self, n: int) -> datetime:
        return self.start + n * self.spacing

    def event(self, n: int) -> dict[str, Any]:
        step, lot = divmod(n, self.lots)
        org = org_of(lot)
        site = (lot * 7 + step) % SITES_PER_ORG
        gtin = _gtin(lot)
        if step == 0:
            biz_step, disposition, action = "commissioning", "active", "ADD"
        else:
            biz_step, disposition = STEPS[(step - 1) % len(STEPS)]
            action = "OBSERVE"
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventTime": self.time_of(n).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventTimeZoneOffset": "+00:00",
            "epcList": [
                f"https://id.gs1.org/01/{gtin}/21/{lot:07d}{step:03d}{k}" for k in range(2)
            ],
            "action": action,
            "bizStep": biz_step,
            "disposition": disposition,
            "readPoint": {"id": _site_uri(org, site)},
            "bizLocation": {"id": _site_uri(org, site)},
            "quantityList": [
                {"epcClass": _lot_class(lot), "quantity": 10 + step % 5, "uom": "KGM"}
            ],
        }
        if biz_step == "inspecting":
            event["sensorElementList"] = [
                {"sensorReport": [{"type": "Temperature", "value": -18.5, "uom": "CEL"}]}
            ]
        return event


def _seed_chunk(spec: tuple[str, int, int, int, str, list[int]]) -> int:
    """Capture and store events [first, first + count): run in a pool process."""
    database_url, events, first, count, start, org_ids = spec
    layout = Layout(events, datetime.fromisoformat(start))
    now = datetime.now(UTC)
    per_org: dict[int, list[dict[str, Any]]] = {}
    for n in range(first, first + count):
        per_org.setdefault(org_of(n % layout.lots), []).append(layout.event(n))
    rows = []
    for org, org_events in per_org.items():
        device = DeviceKey(org_ids[org], f"bench-q-{org}", "http-capture", None)
        result = capture(
            orjson.dumps(org_events),
            device,
            now=now,
            max_payload_bytes=64 * 1024 * 1024,
            max_future_skew=timedelta(minutes=10),
        )
        if result.refused:
            raise SystemExit(f"seed event refused: {result.refused[0]}")
        rows += [
            EventToStore(accepted, org_ids[org], "http-capture", "http:/v1/capture", now)
            for accepted in result.accepted
        ]
    rows.sort(key=lambda row: row.accepted.columns.event_time)
    with psycopg.connect(database_url) as conn, conn.transaction():
        stored = event_store.insert_events(conn, rows)
    return len(stored)


def seed(database_url: str, layout: Layout, org_ids: list[int]) -> int:
    """Store `layout.events` events through capture and COPY, two processes at a time."""
    specs = [
        (database_url, layout.events, first, min(CHUNK, layout.events - first),
         layout.start.isoformat(), org_ids)
        for first in range(0, layout.events, CHUNK)
    ]  # fmt: skip
    stored = 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for done in pool.imap(_seed_chunk, specs):
            stored += done
            if stored % 100_000 < CHUNK:
                print(f"  seeded {stored:>9,} events", flush=True)
    return stored


# Who asks: an org holding a quarter of the events, one holding 1 %, or the regulator (all).
Caller = Literal["large", "small", "regulator"]


@dataclass(frozen=True)
class Shape:
    """One kind of query a user asks, over several values so no one page is always cached."""

    name: str
    caller: Caller
    params: list[list[tuple[str, str]]]

    def paths(self) -> list[str]:
        return [f"/epcis/events?{urllib.parse.urlencode(p)}" for p in self.params]


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def shapes(
    layout: Layout, seqs: list[int], recorded: list[datetime], rng: random.Random
) -> list[Shape]:
    """The query shapes measured, each expected to answer exactly 100 events. `seqs`: ingest
    positions of the large org's events (nextPageToken values); `recorded`: recordTimes
    with at least a page of the large org's events recorded at or after each."""
    large_lots = [lot for lot in range(layout.lots) if org_of(lot) == 0]
    page = [("perPage", str(PAGE))]

    def window(n: int) -> list[tuple[str, str]]:
        # 2 000 events of all orgs (~500 of the large org) from event n on.
        begin, end = layout.time_of(n), layout.time_of(n + 2_000)
        return [("GE_eventTime", _utc(begin)), ("LT_eventTime", _utc(end)), *page]

    spots = [rng.randrange(0, layout.events - 2_000) for _ in range(50)]
    steps = [[("EQ_bizStep", step), *page] for step, _ in STEPS[:6]]
    return [
        Shape("first page", "large", [page]),
        Shape("bizStep", "large", steps),
        Shape("time window", "large", [window(n) for n in spots]),
        Shape(
            "lot (MATCH_epcClass)",
            "large",
            [[("MATCH_epcClass", _lot_class(lot)), *page] for lot in rng.sample(large_lots, 50)],
        ),
        Shape(
            "deep page (nextPageToken)",
            "large",
            [[("nextPageToken", str(seq)), *page] for seq in rng.sample(seqs, 50)],
        ),
        Shape(
            "recorded since (GE_recordTime)",
            "large",
            [[("GE_recordTime", _utc(at)), *page] for at in recorded],
        ),
        Shape("small org: first page", "small", [page]),
        Shape("small org: bizStep", "small", steps),
        *(
            Shape(
                f"{field}, regulator",
                "regulator",
                [
                    [(f"EQ_{field}", _site_uri(org, site)), *page]
                    for org in range(ORGS + 1)
                    for site in range(SITES_PER_ORG)
                ],
            )
            for field in ("bizLocation", "readPoint")
        ),
    ]


def plans(
    database_url: str, shape_list: list[Shape], scopes: dict[Caller, int | None]
) -> dict[str, list[str]]:
    """The plan of each shape's first query, as the route's own SQL runs it (auto_explain)."""
    found: dict[str, list[str]] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for setting in (
            "auto_explain.log_min_duration = 0",
            "auto_explain.log_analyze = on",
            "auto_explain.log_buffers = on",
            "auto_explain.log_timing = on",
            "auto_explain.log_level = notice",
        ):
            conn.execute(f"SET {setting}")
        for shape in shape_list:
            query = parse_event_query(shape.params[0])
            query_events(conn, query, scopes[shape.caller])  # warm
            notices.clear()
            query_events(conn, query, scopes[shape.caller])
            plan = "\n".join(notices).split("\n")
            found[shape.name] = [line for line in plan if line.strip()]
    return found


def settle(base: str, path: str, headers: dict[str, str], limit_s: float = 300) -> None:
    """Wait until the API answers a query within 100 ms again: a run that overloaded it leaves
    requests queued (the client gave up; the server still works them), which would otherwise
    be charged to the next run."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        began = time.monotonic()
        try:
            status, _ = get(base + path, timeout=30, headers=headers)
        except OSError:
            status = 0
        if status == 200 and time.monotonic() - began < 0.1:
            return
        time.sleep(1)
    raise SystemExit(f"the API did not settle within {limit_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=20, help="of each measured run")
    parser.add_argument("--rate", type=float, default=100, help="fixed arrival rate, req/s")
    parser.add_argument("--connections", type=int, default=16, help="wrk's, for saturation")
    args = parser.parse_args()
    if args.events % (EVENTS_PER_LOT * 100) or args.events < 100_000:
        raise SystemExit(f"--events: a multiple of {EVENTS_PER_LOT * 100}, at least 100 000")
    wrk = require_wrk()
    rng = random.Random(20261204)
    layout = Layout(
        args.events, datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS + 1)
    )
    folder = Path(tempfile.mkdtemp(prefix="tracefin-bench-query-"))
    log = folder / "api.log"
    api = None
    try:
        with scratch_database(ADMIN_URL, "tracefin_bench_query") as database_url:
            with psycopg.connect(database_url, autocommit=True) as conn:
                keys, org_ids = [], []
                for org in range(ORGS + 1):
                    added, key = registry_store.add_org(conn, f"bench-q-{org}", "manufacturer")
                    org_ids.append(added.id)
                    keys.append(key)
                _, regulator_key = registry_store.add_org(conn, "bench-q-regulator", "regulator")
            scopes: dict[Caller, int | None] = {
                "large": org_ids[0],
                "small": org_ids[SMALL_ORG],
                "regulator": None,
            }
            auth: dict[Caller, dict[str, str]] = {
                "large": {"Authorization": f"Bearer {keys[0]}"},
                "small": {"Authorization": f"Bearer {keys[SMALL_ORG]}"},
                "regulator": {"Authorization": f"Bearer {regulator_key}"},
            }
            began = time.perf_counter()
            stored = seed(database_url, layout, org_ids)
            seeded_s = time.perf_counter() - began
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE events")
                size = conn.execute(
                    "SELECT pg_size_pretty(pg_total_relation_size('events'))"
                ).fetchone()
                seqs = [
                    int(row[0])
                    for row in conn.execute(
                        "SELECT ingest_seq FROM events WHERE org_id = %s AND ingest_seq"
                        " < (SELECT max(ingest_seq) FROM events) - 2000 ORDER BY random()"
                        " LIMIT 200",
                        (org_ids[0],),
                    )
                ]
                # The last few times capture stored a chunk (each holds ~1 250 of its events).
                recorded = [
                    row[0]
                    for row in conn.execute(
                        "SELECT DISTINCT received_at FROM events WHERE org_id = %s"
                        " ORDER BY received_at DESC LIMIT 5",
                        (org_ids[0],),
                    )
                ]
            print(
                f"seeded                : {stored:,} events in {seeded_s:.0f} s"
                f" (capture + COPY, 2 processes); the events table and its indexes:"
                f" {size[0] if size else '?'}"
            )
            shape_list = shapes(layout, seqs, recorded, rng)
            for name, plan in plans(database_url, shape_list, scopes).items():
                print(f"plan: {name}")
                for line in plan:
                    print(f"    {line}")

            port = free_port()
            base = f"http://127.0.0.1:{port}"
            api = start_api(database_url, UNUSED_RPC, port, log)
            wait_healthy(base, api, log, timeout=30)
            for shape in shape_list:
                for path in shape.paths():
                    status, body = get(
                        base + path,
                        timeout=30,
                        headers=auth[shape.caller],
                    )
                    document = json.loads(body)
                    found = len(document["epcisBody"]["queryResults"]["resultsBody"]["eventList"])
                    if status != 200 or found != PAGE:
                        raise SystemExit(f"{path}: {status}, {found} events, not {PAGE}")
            print(
                f"checked               : every path of every shape answers 200 with {PAGE} events"
            )

            mix = [p for s in shape_list if s.caller == "large" for p in s.paths()]
            saturation = {
                "healthz": run_wrk(wrk, base, ["/healthz"], args.seconds, args.connections, folder),
                "query mix": run_wrk(
                    wrk, base, mix, args.seconds, args.connections, folder, auth["large"]
                ),
            }
            for name, figures in saturation.items():
                print(
                    f"{name:<10} saturated  : {figures['rps']:8.0f} req/s  (wrk -t2"
                    f" -c{args.connections} -d{args.seconds}s; p50 {figures['p50_us'] / 1000:.1f}"
                    f" ms, p99 {figures['p99_us'] / 1000:.1f} ms, {figures['errors']} errors)"
                )
            ratio = saturation["query mix"]["rps"] / saturation["healthz"]["rps"]
            print(f"ratio                 : {ratio:8.3f} of the bare route's throughput")

            fixed: dict[str, dict[str, Any]] = {}
            runs: list[tuple[str, list[str], dict[str, str]]] = [
                ("healthz (bare route)", ["/healthz"], {})
            ] + [(s.name, s.paths(), auth[s.caller]) for s in shape_list]
            for name, paths, headers in runs:
                settle(base, shape_list[0].paths()[0], auth["large"])
                fixed[name] = run_open_loop(port, paths, args.rate, args.seconds, headers)
                result = fixed[name]
                print(
                    f"{args.rate:.0f} req/s {name:<31}: p50 {ms(result['p50_ms'])}"
                    f"  p99 {ms(result['p99_ms'])}  (max {ms(result['max_ms'])};"
                    f" {result['answered']}/{result['scheduled']} answered,"
                    f" failures {result['failures'] or 'none'})"
                )
            worst = max(
                (r["p99_ms"] if r["p99_ms"] is not None else float("inf"))
                for n, r in fixed.items()
                if n != "healthz (bare route)"
            )
            print(f"worst query p99       : {worst:.1f} ms (target <= 50 ms)")
            stop(api)
            api = None
    finally:
        if api is not None:
            stop(api)

    save_result(
        "query",
        {
            "store": {"events": stored, "orgs": f"{ORGS} with 24.75 % each, 1 with 1 %",
                      "events_per_lot": EVENTS_PER_LOT,
                      "seed_seconds": round(seeded_s, 1)},
            "api": "tracefin api, one uvicorn worker; the query routes hold no rate limit",
            "page": PAGE,
            "saturation": {name: wrk_figures(f) for name, f in saturation.items()},
            "ratio_to_bare_route": round(ratio, 3),
            "fixed_rate": {
                name: {
                    "req_per_s": args.rate,
                    "seconds": args.seconds,
                    "answered": r["answered"],
                    "scheduled": r["scheduled"],
                    "failures": r["failures"],
                    "p50_ms": rounded(r["p50_ms"]),
                    "p99_ms": rounded(r["p99_ms"]),
                    "max_ms": rounded(r["max_ms"]),
                }
                for name, r in fixed.items()
            },
            "worst_query_p99_ms": round(worst, 2),
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
