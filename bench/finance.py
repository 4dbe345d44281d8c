"""Finance worker benchmark: does `tracefin finance` keep up with 5 000 events/s?

In one run on the local PostgreSQL: (1) drain rate — the worker applies a backlog of whole
product lifecycles from position 0, flat out; (1b) the same for a backlog committed as two
ingest workers racing each other would (every lot's events out of event order, half of them a
chunk or more after their lot's commissioning), as a ratio to (1); (2) steady load — the same
kind of events are committed and positioned at a fixed rate (default 5 000/s for 60 s) while the
worker follows; the lag (positions behind, and seconds between an event's commit and its
application) is sampled throughout. Prints the drain rates and their ratio to the offered rate,
lag p50/p99/max, and writes bench/results/finance-latest.json.

    .venv/bin/python bench/finance.py [--rate 5000] [--seconds 60] [--backlog 50000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ADMIN_URL, save_result
from epcis.capture import capture
from finance import service
from finance.journal_seal import DEVELOPMENT_KEY
from finance.store import attribution
from finance.store.journal import Journal
from ingest.topics import Kind, device_topic
from ledger import log_store
from records import attestation_store, event_store, registry_store
from records.attestation_store import AttestationToStore
from records.db import Conn
from records.event_store import EventToStore
from tracefin.schema import scratch_database
from tracefin.simulate import (
    COMPANY_PREFIX,
    WAREHOUSE_GLN,
    gtin_for,
    lifecycle,
    register_sim_sites,
)

# The workers this starts have no TRACEFIN_JOURNAL_KEY: they seal with the development key.
JOURNAL = Journal(DEVELOPMENT_KEY)

ORG = "bench-co"
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"


def prepare(conn: Conn, count: int, first_product: int) -> list[EventToStore]:
    """`count` lifecycle events of an unsigned device (signatures are ingest's cost, not ours)."""
    device = registry_store.find_devices(conn, [(ORG, "plc-1")])[(ORG, "plc-1")]
    now = datetime.now(UTC)
    start = now - timedelta(hours=2)
    rows: list[EventToStore] = []
    product = first_product
    while len(rows) < count:
        events = [
            event for _, event in lifecycle(product, start + timedelta(milliseconds=10 * product))
        ]
        result = capture(
            __import__("orjson").dumps(events),
            device,
            now=now,
            max_payload_bytes=1 << 20,
            max_future_skew=timedelta(minutes=10),
        )
        # Sent by the device over MQTT: the authority rules count custody only from a device.
        topic = device_topic(ORG, device.device_id, Kind.EVENTS)
        rows += [
            EventToStore(a, device.org_id, device.device_id, topic, now) for a in result.accepted
        ]
        if not result.accepted:
            raise RuntimeError(f"capture refused the lifecycle: {result.refused[:1]}")
        product += 1
    return rows[:count]


def out_of_order(rows: list[EventToStore], batch: int = 1000) -> list[EventToStore]:
    """As two ingest workers sharing a subscription commit them, one a batch behind the other.

    The broker hands messages to the two in turn; each commits `batch` of its messages at a
    time, and the second commits its batch after the first's next one. So every lot's events
    reach finance out of event order, many of them a chunk or more after their lot's
    commissioning or packing.
    """
    first, second = rows[0::2], rows[1::2]
    out: list[EventToStore] = []
    for at in range(0, max(len(first), len(second)) + batch, batch):
        out += first[at : at + batch]
        out += second[at - batch : at] if at >= batch else []
    return out


def commit(conn: Conn, rows: list[EventToStore]) -> None:
    stamped = [
        EventToStore(r.accepted, r.org_id, r.device_id, r.topic, datetime.now(UTC)) for r in rows
    ]
    with conn.transaction():
        event_store.insert_events(conn, stamped)
        # Each event's attestation, as ingest writes it with the event: finance reads them.
        attestation_store.insert_attestations(
            conn,
            [
                AttestationToStore(
                    r.accepted.digest,
                    r.org_id,
                    r.device_id,
                    None,
                    "mqtt",
                    r.accepted.signature,
                    r.received_at,
                )
                for r in stamped
            ],
        )
        log_store.assign_positions(conn, len(stamped))


def start_worker(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TRACEFIN_DATABASE_URL": database_url}
    return subprocess.Popen(
        [sys.executable, "-m", "tracefin.cli", "finance"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_cursor(conn: Conn, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while attribution.cursor(conn, "finance") < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"finance cursor {attribution.cursor(conn, 'finance')} of {target}")
        time.sleep(0.01)


def seconds_behind(conn: Conn) -> float:
    """Commit-to-now age of the oldest event the worker has not applied (0 when caught up)."""
    row = conn.execute(
        "SELECT extract(epoch FROM now() - e.received_at) FROM log_entries l"
        " JOIN events e ON e.event_hash = l.event_hash"
        " WHERE l.log_index = (SELECT next_index FROM log_cursors WHERE worker = 'finance')"
    ).fetchone()
    return float(row[0]) if row else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--backlog", type=int, default=50_000)
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="tracefin-bench-")) / "finance.log"
    with (
        scratch_database(ADMIN_URL, "tracefin_bench") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        registry_store.add_org(conn, ORG, "manufacturer", [COMPANY_PREFIX])
        registry_store.add_device(conn, ORG, "plc-1", None)
        register_sim_sites(conn, ORG)
        registry_store.add_org(conn, "bank", "financier")
        service.add_warehouse(conn, JOURNAL, ORG, WAREHOUSE, "Cold store")
        service.supervise(conn, JOURNAL, "bank", WAREHOUSE)
        service.open_line(conn, JOURNAL, "bank", ORG, "1000000.00", "CNY")
        steady_count = args.rate * args.seconds
        began = time.perf_counter()
        backlog = prepare(conn, args.backlog, 0)
        disordered = out_of_order(prepare(conn, args.backlog, args.backlog // 7 + 1))
        steady = prepare(conn, steady_count, 2 * (args.backlog // 7 + 1))
        for number in range((2 * args.backlog + steady_count) // 7 + 3):
            service.add_product(conn, JOURNAL, ORG, gtin_for(number), "P", "frozen", "2.00", "CNY")
            service.set_price(conn, JOURNAL, "bank", gtin_for(number), "2.00", "CNY")
        print(
            f"prepared {len(backlog) + len(disordered) + len(steady)} events in"
            f" {time.perf_counter() - began:.0f}s"
        )

        # (1) drain rate from a full backlog.
        for first in range(0, len(backlog), 5000):
            commit(conn, backlog[first : first + 5000])
        worker = start_worker(url, log)
        began = time.perf_counter()
        wait_cursor(conn, len(backlog), timeout=900)
        drain = len(backlog) / (time.perf_counter() - began)
        print(f"drain rate        : {drain:8.0f} events/s ({len(backlog)} positions, flat out)")

        # (1b) the same kind of backlog as two racing ingest workers commit it: lots folded
        # again, events waiting for their lot's commissioning or packing.
        for first in range(0, len(disordered), 5000):
            commit(conn, disordered[first : first + 5000])
        began = time.perf_counter()
        wait_cursor(conn, len(backlog) + len(disordered), timeout=900)
        drain_disordered = len(disordered) / (time.perf_counter() - began)
        print(
            f"drain, disordered: {drain_disordered:8.0f} events/s (two racing ingest workers:"
            f" {drain_disordered / drain:.2f}x the in-order drain)"
        )

        # (2) steady load while the worker follows.
        chunk = max(1, args.rate // 20)
        lags: list[float] = []
        behind: list[int] = []
        began = time.perf_counter()
        sent = 0
        next_sample = began
        while sent < len(steady):
            commit(conn, steady[sent : sent + chunk])
            sent += chunk
            now = time.perf_counter()
            if now >= next_sample:
                lags.append(seconds_behind(conn))
                behind.append(log_store.log_size(conn) - attribution.cursor(conn, "finance"))
                next_sample = now + 0.5
            ahead = sent / args.rate - (time.perf_counter() - began)
            if ahead > 0:
                time.sleep(ahead)
        offered = sent / (time.perf_counter() - began)
        finished = time.perf_counter()
        wait_cursor(conn, len(backlog) + len(disordered) + len(steady), timeout=900)
        catch_up = time.perf_counter() - finished
        worker.terminate()
        worker.wait(30)
        lags.sort()
        p50 = statistics.median(lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        ratio = drain / args.rate
        print(f"steady load       : {offered:8.0f} events/s for {args.seconds}s")
        print(
            f"finance lag       : p50 {p50:.2f}s  p99 {p99:.2f}s  max {lags[-1]:.2f}s;"
            f" at most {max(behind)} positions behind; caught up {catch_up:.1f}s after"
        )
        print(f"headroom          : {ratio:8.2f}x the offered rate (drain rate / {args.rate})")
    save_result(
        "finance",
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "offered_events_per_s": round(offered),
            "drain_events_per_s": round(drain),
            "drain_disordered_events_per_s": round(drain_disordered),
            "disordered_to_in_order_ratio": round(drain_disordered / drain, 2),
            "headroom_ratio": round(ratio, 2),
            "lag_p50_s": round(p50, 3),
            "lag_p99_s": round(p99, 3),
            "lag_max_s": round(lags[-1], 3),
            "max_positions_behind": max(behind),
            "catch_up_after_load_s": round(catch_up, 2),
        },
    )


if __name__ == "__main__":
    main()
