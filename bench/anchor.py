"""Anchoring benchmark: one transaction per event (the naive design) vs tracefin's batches.

In one run on a private anvil and the local PostgreSQL:
(1) naive: N events, each anchored in its own transaction, one after the other;
(2) positioning: a full queue moved into the log as the anchor leader does it (chunks of
    20 000, one transaction each), positions per second;
(3) batched: many more events anchored by `tracefin anchor` from a full queue;
(4) lag: events committed at a steady 5 000/s for 60 s while `tracefin anchor` runs; the lag of
    each event is its batch's recorded time minus its commit time (p50 / p99).
Prints events anchored per second for (1) and (3), their ratio, positions per second, and the
lag figures, and writes them to bench/results/anchor-latest.json.

    .venv/bin/python bench/anchor.py [--naive 200] [--positioning 200000] [--batched 50000]
                                     [--rate 5000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
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
from ledger import log_store, merkle
from ledger.anchoring import AnchorConfig
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import event_store, registry_store
from records.db import Conn
from records.event_store import EventToStore
from tracefin.embedded import start_anvil
from tracefin.schema import scratch_database
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import register_sim_devices, signed_publications, sim_devices


def template_row(conn: Conn) -> EventToStore:
    """One real captured event; the load reuses it with fresh digests (anchoring reads those)."""
    register_sim_devices(conn, "bench", seed="bench")
    device = registry_store.find_devices(conn, [("bench", "line-1")])[("bench", "line-1")]
    publication = next(
        signed_publications(
            sim_devices("bench", "bench"), range(1), datetime.now(UTC) - timedelta(hours=1)
        )
    )
    result = capture(
        publication.payload,
        device,
        now=datetime.now(UTC),
        max_payload_bytes=1 << 18,
        max_future_skew=timedelta(minutes=10),
    )
    return EventToStore(
        result.accepted[0], device.org_id, device.device_id, publication.topic, datetime.now(UTC)
    )


def insert_synthetic(conn: Conn, template: EventToStore, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        dataclasses.replace(
            template,
            accepted=dataclasses.replace(template.accepted, digest=secrets.token_bytes(32)),
            received_at=now,
        )
        for _ in range(count)
    ]
    with conn.transaction():
        event_store.insert_events(conn, rows)


def measure_naive(chain: Chain, conn: Conn, count: int) -> float:
    """Events/s when every event is its own anchoring transaction (sequential, with receipts)."""
    digests = log_store.entries(conn, 0, count)
    began = time.perf_counter()
    for index, digest in enumerate(digests):
        chain.anchor_batch(index, 1, merkle.root([digest]))
    return count / (time.perf_counter() - began)


def measure_positioning(conn: Conn, template: EventToStore, count: int) -> float:
    """Positions/s moving `count` queued events into the log in the leader's chunks."""
    for _ in range(count // 5000):
        insert_synthetic(conn, template, 5000)
    chunk = AnchorConfig.position_chunk
    began = time.perf_counter()
    moved = 0
    while moved < count:
        moved += log_store.assign_positions(conn, chunk)
    return moved / (time.perf_counter() - began)


def start_worker(database_url: str, rpc_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TRACEFIN_DATABASE_URL": database_url, "TRACEFIN_CHAIN_RPC_URL": rpc_url}
    return subprocess.Popen(
        [sys.executable, "-m", "tracefin.cli", "anchor"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_anchored(conn: Conn, deployment_id: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while log_store.anchored_end(conn, deployment_id) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"anchored {log_store.anchored_end(conn, deployment_id)} of {count}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--naive", type=int, default=200)
    parser.add_argument("--positioning", type=int, default=200_000)
    parser.add_argument("--batched", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()

    node = start_anvil()
    log = Path(tempfile.mkdtemp(prefix="tracefin-bench-")) / "anchor.log"
    try:
        with (
            scratch_database(ADMIN_URL, "tracefin_bench") as database_url,
            psycopg.connect(database_url, autocommit=True) as conn,
        ):
            w3 = connect(node.url)
            deployment = ensure_deployment(conn, w3, DEVNET_PRIVATE_KEY).deployment
            template = template_row(conn)

            # (1) naive, on a deployment of its own so the batched run starts at position 0.
            insert_synthetic(conn, template, args.naive)
            log_store.assign_positions(conn, args.naive)
            naive_chain = Chain(w3, deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
            naive = measure_naive(naive_chain, conn, args.naive)
            print(f"naive, 1 tx per event : {naive:10.1f} events/s ({args.naive} events)")
            conn.execute("TRUNCATE events, log_queue, log_entries, anchor_batches")
            conn.execute("DELETE FROM chain_deployments")
            deployment = ensure_deployment(conn, w3, DEVNET_PRIVATE_KEY).deployment

            # (2) positioning alone, from a full queue; then the log starts empty again.
            positioning = measure_positioning(conn, template, args.positioning)
            print(f"positioning           : {positioning:10.0f} positions/s ({args.positioning})")
            conn.execute("TRUNCATE events, log_queue, log_entries")

            # (3) batched, from a full queue.
            for _ in range(args.batched // 5000):
                insert_synthetic(conn, template, 5000)
            worker = start_worker(database_url, node.url, log)
            began = time.perf_counter()
            wait_anchored(conn, deployment.id, args.batched, timeout=600)
            batched = args.batched / (time.perf_counter() - began)
            ratio = batched / naive
            print(f"tracefin batches      : {batched:10.1f} events/s ({args.batched} events)")
            print(f"ratio                 : {ratio:10.1f}x (target >= 50x)")

            # (4) lag at a steady load.
            start_index = (
                log_store.log_size(conn)
                + conn.execute("SELECT count(*) FROM log_queue").fetchone()[0]
            )
            chunk = max(1, args.rate // 20)  # 20 commits a second
            began = time.perf_counter()
            sent = 0
            while time.perf_counter() - began < args.seconds:
                insert_synthetic(conn, template, chunk)
                sent += chunk
                ahead = sent / args.rate - (time.perf_counter() - began)
                if ahead > 0:
                    time.sleep(ahead)
            achieved = sent / (time.perf_counter() - began)
            wait_anchored(conn, deployment.id, start_index + sent, timeout=120)
            worker.terminate()
            worker.wait(30)
            row = conn.execute(
                """
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag)
                FROM (
                    SELECT extract(epoch FROM b.anchored_at - e.received_at) AS lag
                    FROM events e
                    JOIN log_entries l ON l.event_hash = e.event_hash
                    JOIN anchor_batches b ON b.deployment_id = %s
                         AND l.log_index >= b.first_index AND l.log_index < b.first_index + b.count
                    WHERE l.log_index >= %s
                ) AS lags
                """,
                (deployment.id, start_index),
            ).fetchone()
            assert row is not None
            p50, p99, worst = (float(value) for value in row)
            print(
                f"steady load           : {achieved:10.0f} events/s committed for {args.seconds}s"
            )
            print(
                f"anchoring lag         : p50 {p50:.2f}s  p99 {p99:.2f}s  max {worst:.2f}s"
                " (target p99 <= 2 s)"
            )
        save_result(
            "anchor",
            {
                "naive_events_per_s": round(naive, 1),
                "naive_events": args.naive,
                "batched_events_per_s": round(batched, 1),
                "batched_events": args.batched,
                "ratio": round(ratio, 1),
                "positioning_per_s": round(positioning),
                "positioning_events": args.positioning,
                "steady_load_events_per_s": round(achieved),
                "steady_load_seconds": args.seconds,
                "lag_p50_s": round(p50, 3),
                "lag_p99_s": round(p99, 3),
                "lag_max_s": round(worst, 3),
            },
        )
    finally:
        node.stop()


if __name__ == "__main__":
    main()
