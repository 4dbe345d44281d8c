"""Public lookup benchmark: provenance JSON pages against the bare health route of the same app.

In one run, on a private anvil and the local PostgreSQL, with `tracefin api` as a real process
(one uvicorn worker) and a real HTTP load generator in its own process:
(1) saturation: `wrk -t2 -c64 -d30s` on /healthz, then on the provenance JSON of 20 items
    whose histories hold ~50 anchored events each (item + pallet + lot events, every one with
    its verification: batch, block, transaction and proof link); req/s of both and the ratio
    (target >= 0.4 of the bare route);
(2) latency at a fixed arrival rate (200 req/s for 30 s) on the same provenance pages, from an
    open-loop generator that times every request from its *scheduled* send time, so a slow
    response does not hide the requests queued behind it (no coordinated omission); p50 / p99
    (target p99 <= 25 ms).
Debian has wrk but not wrk2, so (2) uses the asyncio generator of bench/http_load.py, run as
a separate process. The API's public rate limit is raised for the run
(TRACEFIN_API_PUBLIC_RATE_PER_MINUTE) so that it measures the lookups, not the limiter.
Prints the figures and writes them to bench/results/lookup-latest.json.

    .venv/bin/python bench/lookup.py [--products 20] [--events 50] [--seconds 30]
                                      [--connections 64] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import psycopg

from bench.common import ADMIN_URL, save_result
from bench.http_load import (
    RATE_PER_MINUTE,
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
from epcis.capture import capture
from epcis.event_hash import event_hash_digest
from epcis.signatures import sign_digest
from finance import service
from finance.journal_seal import DEVELOPMENT_KEY
from finance.store.journal import Journal
from ledger.anchoring import anchor_everything
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import event_store, registry_store
from records.db import Conn
from records.event_store import EventToStore
from tracefin.embedded import free_port, start_anvil
from tracefin.schema import scratch_database
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import (
    DEVICES,
    WAREHOUSE_GLN,
    gtin_for,
    lifecycle,
    register_sim_devices,
    sim_devices,
)

# The workers this starts have no TRACEFIN_JOURNAL_KEY: they seal with the development key.
JOURNAL = Journal(DEVELOPMENT_KEY)

ORG = "bench-lookup"


def _time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _history(product_no: int, start: datetime, extra: int) -> list[tuple[str, dict[str, Any]]]:
    """One lot's lifecycle with `extra` lot events (cold-store checks) while it is stored."""
    events = lifecycle(product_no, start)
    inspect = events[2][1]
    store = events[3][1]
    stored_at = datetime.fromisoformat(str(store["eventTime"]))
    checks = []
    for k in range(extra):
        at = _time(stored_at + timedelta(minutes=k + 1))
        if k % 2 == 0:
            device, check = "qc-1", dict(inspect)
            check["readPoint"] = check["bizLocation"] = {
                "id": f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
            }
            check["sensorElementList"] = [
                {"sensorReport": [{"type": "Temperature", "value": -18.0 - k / 10, "uom": "CEL"}]}
            ]
        else:
            device, check = "wh-1", dict(store)
        check["eventTime"] = at
        checks.append((device, check))
    # Shipping, acceptance and the sale happen after the checks.
    tail = []
    for device, event in events[4:]:
        moved = dict(event)
        moved["eventTime"] = _time(
            datetime.fromisoformat(str(event["eventTime"])) + timedelta(minutes=extra + 1)
        )
        tail.append((device, moved))
    return [*events[:4], *checks, *tail]


def seed(conn: Conn, products: int, events_per_item: int) -> list[str]:
    """Store, through capture, `products` lots whose first item's page shows ~N events."""
    register_sim_devices(conn, ORG, seed=ORG)
    keys = sim_devices(ORG, ORG)
    devices = registry_store.find_devices(conn, [(ORG, device) for device in DEVICES])
    now = datetime.now(UTC)
    start = now - timedelta(hours=3)
    extra = max(0, events_per_item - 7)  # the item page of a plain lifecycle shows 7 events
    rows = []
    paths = []
    for product_no in range(products):
        product_start = start + timedelta(seconds=product_no)
        for device_id, event in _history(product_no, product_start, extra):
            signature = sign_digest(keys[device_id].private_key, event_hash_digest(event))
            payload = orjson.dumps({"event": event, "sig": signature})
            device = devices[(ORG, device_id)]
            result = capture(
                payload,
                device,
                now=now,
                max_payload_bytes=256 * 1024,
                max_future_skew=timedelta(minutes=10),
            )
            assert not result.refused, result.refused
            topic = f"tf/{ORG}/{device_id}/events"
            rows += [
                EventToStore(accepted, device.org_id, device.device_id, topic, now)
                for accepted in result.accepted
            ]
        gtin = gtin_for(product_no)
        service.add_product(
            conn, JOURNAL, ORG, gtin, f"Frozen dumplings {product_no}", "frozen", "12.50", "CNY"
        )
        paths.append(f"/01/{gtin}/21/{product_no:07d}000")
    with conn.transaction():
        stored = event_store.insert_events(conn, rows)
    assert len(stored) == len(rows), (len(stored), len(rows))
    return paths


def check_pages(base: str, paths: list[str]) -> tuple[float, int]:
    """Every page answers with all its events anchored; returns (mean events, mean bytes)."""
    counts, sizes = [], []
    for path in paths:
        status, body = get(base + path)
        page = json.loads(body)
        assert status == 200, (path, status)
        events = len(page["events"])
        assert page["verified"] == events, (path, page["verified"], events)
        assert all(e["verification"]["tx_hash"] for e in page["events"]), path
        counts.append(events)
        sizes.append(len(body))
    return sum(counts) / len(counts), round(sum(sizes) / len(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--events", type=int, default=50, help="events per item page")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each run")
    args = parser.parse_args()
    wrk = require_wrk()

    node = start_anvil()
    folder = Path(tempfile.mkdtemp(prefix="tracefin-bench-"))
    log = folder / "api.log"
    api: subprocess.Popen[bytes] | None = None
    try:
        with scratch_database(ADMIN_URL, "tracefin_bench") as database_url:
            with psycopg.connect(database_url, autocommit=True) as conn:
                began = time.perf_counter()
                paths = seed(conn, args.products, args.events)
                w3 = connect(node.url)
                deployment = ensure_deployment(conn, w3, DEVNET_PRIVATE_KEY).deployment
                chain = Chain(w3, deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
                anchored = anchor_everything(conn, chain, deployment.id)
                print(
                    f"seeded                : {anchored} events, {len(paths)} item pages,"
                    f" anchored in one batch ({time.perf_counter() - began:.1f}s)"
                )
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            api = start_api(database_url, node.url, port, log)
            wait_healthy(base, api, log, timeout=30)
            events, size = check_pages(base, paths)
            print(
                f"tracefin api          : one uvicorn worker on :{port}; public rate limit raised"
                f" to {RATE_PER_MINUTE:,}/min for the benchmark"
            )
            print(f"item page             : {events:.1f} events, {size} B of JSON, all anchored")

            saturation = {}
            for name, route in (("healthz", ["/healthz"]), ("provenance", paths)):
                if args.warmup:
                    run_wrk(wrk, base, route, args.warmup, args.connections, folder)
                saturation[name] = run_wrk(wrk, base, route, args.seconds, args.connections, folder)
                figures = saturation[name]
                print(
                    f"{name:<11} saturated : {figures['rps']:8.0f} req/s"
                    f"  (wrk -t2 -c{args.connections} -d{args.seconds}s;"
                    f" p50 {figures['p50_us'] / 1000:.1f} ms,"
                    f" p99 {figures['p99_us'] / 1000:.1f} ms,"
                    f" {figures['errors']} errors)"
                )
            ratio = saturation["provenance"]["rps"] / saturation["healthz"]["rps"]
            print(f"ratio                 : {ratio:8.2f} (target >= 0.4)")

            fixed = run_open_loop(port, paths, args.rate, args.seconds)
            if saturation["provenance"]["rps"] < args.rate:
                print(
                    f"note                  : {args.rate:.0f} req/s is above the saturated rate"
                    f" ({saturation['provenance']['rps']:.0f} req/s): the queue grows for the whole"
                    " run"
                )
            print(
                f"provenance {args.rate:.0f} req/s  : p50 {ms(fixed['p50_ms'])}"
                f"  p99 {ms(fixed['p99_ms'])}  (target p99 <= 25 ms;"
                f" p90 {ms(fixed['p90_ms'])}, max {ms(fixed['max_ms'])};"
                f" {fixed['answered']}/{fixed['scheduled']} answered at"
                f" {fixed['achieved_rps']:.0f} req/s, failures {fixed['failures'] or 'none'})"
            )
            if stop(api):
                print(
                    "tracefin api          : killed after 15 s of graceful shutdown (requests"
                    " still queued from the fixed-rate run)"
                )
    finally:
        if api is not None:
            stop(api)
        node.stop()

    save_result(
        "lookup",
        {
            "load_generator": f"wrk -t2 -c{args.connections} -d{args.seconds}s; open-loop asyncio"
            " generator (latency from scheduled send time) for the fixed rate",
            "api": "tracefin api, one uvicorn worker, public rate limit raised to"
            f" {RATE_PER_MINUTE}/min",
            "item_pages": len(paths),
            "events_per_page": events,
            "page_bytes": size,
            "healthz": wrk_figures(saturation["healthz"]),
            "provenance": wrk_figures(saturation["provenance"]),
            "ratio": round(ratio, 3),
            "fixed_rate": {
                "req_per_s": args.rate,
                "seconds": args.seconds,
                "achieved_req_per_s": round(fixed["achieved_rps"], 1),
                "answered": fixed["answered"],
                "scheduled": fixed["scheduled"],
                "failures": fixed["failures"],
                "p50_ms": rounded(fixed["p50_ms"]),
                "p90_ms": rounded(fixed["p90_ms"]),
                "p99_ms": rounded(fixed["p99_ms"]),
                "max_ms": rounded(fixed["max_ms"]),
            },
        },
    )


if __name__ == "__main__":
    main()
