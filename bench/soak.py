"""Soak: all workers as subprocesses at a steady rate; lags, RSS growth and exactly-once at the end.

On a private Mosquitto and anvil and a scratch database on the local PostgreSQL (as the other
benchmarks), `--publishers` processes sign simulated product lifecycles first, then publish them
(one event per message, QoS 1, one `mosquitto_pub -l` per device topic fed at the asked pace)
at `--rate` events/s in total for `--minutes`, while `tracefin ingest`
(`--ingest-workers`, shared subscription), `tracefin anchor`, `tracefin finance` and
`tracefin api` run as child processes. Prints and saves (bench/results/soak-latest.json):

- throughput: offered (publish) rate, and stored rate from the start of the load until every
  published event was committed (counted each second once the publishers are done);
- anchoring lag per event, from the time the event was due to be published (its publisher's
  start plus its place in the pace: the load generator's clock, not a worker's) to its batch
  recorded: p50 / p99 / max;
- finance lag, sampled every second, from the same publish times: how long ago the oldest
  published event that finance has not applied yet was due (an event still in the broker, or
  queued in a worker, counts);
- RSS of each worker after warm-up and at the end of the load (growth %), and peak RSS;
- the exactly-once check (published digests vs. the events table), the audit, and whether any
  worker died or the API stopped answering /readyz.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 5000] [--ingest-workers 2]
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ADMIN_URL, MAX_LINES_PER_MOSQUITTO_PUB, save_result
from epcis.event_hash import event_hash_digest
from epcis.identifiers import lot_uri
from epcis.signatures import sign_digest
from finance import pledges, service
from finance.audit import full_audit as audit
from finance.journal_seal import DEVELOPMENT_KEY
from finance.pledges import PledgeRegistry
from finance.store import credit
from finance.store.journal import Journal
from ingest.mqtt_link import BrokerAddress, parse_mqtt_url
from ledger import log_store
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import registry_store
from records.db import Conn
from tracefin.embedded import free_port, start_anvil, start_mosquitto
from tracefin.schema import scratch_database
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import (
    ITEMS_PER_LOT,
    WAREHOUSE_GLN,
    gtin_for,
    lifecycle,
    register_sim_devices,
    register_sim_sites,
    sim_devices,
)

# The workers this starts have no TRACEFIN_JOURNAL_KEY: they seal with the development key.
JOURNAL = Journal(DEVELOPMENT_KEY)

ORG = "soak-factory"
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
EVENTS_PER_PRODUCT = 7
PLEDGED_LOTS = 20
DRAIN_TIMEOUT_S = 900
# The publishers write what is due every tick (10 ms: 25 messages each of two at 5 000/s).
PUBLISH_TICK_S = 0.01
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# --- publishers (child processes) -------------------------------------------------------------


class EventLike(Protocol):
    """A multiprocessing Event, as a publisher process uses it."""

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _end_with_parent() -> None:
    """In a child before exec: Linux sends it SIGTERM when the process that started it ends."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class _TopicPipes:
    """One `mosquitto_pub -q 1 -l` per device topic, fed line by line, and replaced by a new
    one after MAX_LINES_PER_MOSQUITTO_PUB lines (more would lose messages: bench/common.py)."""

    def __init__(self, address: BrokerAddress, client_prefix: str) -> None:
        self._address = address
        self._prefix = client_prefix
        self._current: dict[str, subprocess.Popen[bytes]] = {}
        self._lines: dict[str, int] = {}
        self._all: list[subprocess.Popen[bytes]] = []

    def open(self, topic: str) -> None:
        process = subprocess.Popen(
            [
                "mosquitto_pub",
                *("-h", self._address.host, "-p", str(self._address.port), "-V", "5"),
                *("-q", "1", "-M", "200", "-i", f"{self._prefix}-{len(self._all)}"),
                *("-t", topic, "-l"),
            ],
            stdin=subprocess.PIPE,
            # Ended with this publisher, however it ends (a stopped soak terminates it).
            preexec_fn=_end_with_parent,
        )
        self._current[topic] = process
        self._lines[topic] = 0
        self._all.append(process)

    def write(self, topic: str, lines: list[bytes]) -> None:
        while lines:
            room = MAX_LINES_PER_MOSQUITTO_PUB - self._lines[topic]
            if room == 0:
                self._close(self._current[topic])  # it finishes on its own; waited for at the end
                self.open(topic)
                continue
            part, lines = lines[:room], lines[room:]
            stdin = self._current[topic].stdin
            assert stdin is not None
            stdin.write(b"".join(part))
            stdin.flush()
            self._lines[topic] += len(part)

    @staticmethod
    def _close(process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None
        process.stdin.close()

    def close_all(self) -> bool:
        """Close every input and wait: True if every mosquitto_pub exited cleanly."""
        for process in self._current.values():
            self._close(process)
        return all(process.wait(DRAIN_TIMEOUT_S) == 0 for process in self._all)


def publish_share(
    mqtt_url: str,
    index: int,
    publishers: int,
    products: int,
    rate: float,
    seconds: float,
    start_epoch: float,
    digests_path: str,
    result_path: str,
    ready: EventLike,
    go: EventLike,
) -> None:
    """One publisher process: products index, index + publishers, …, for `seconds` at `rate`.

    Every message is signed before the load starts (then `ready` is set; the load starts at
    `go`), and published by one `mosquitto_pub -q 1 -l` per device topic that this process
    feeds line by line at the asked pace: signing, or a Python MQTT client, on the same two
    cores as the pipeline kept the offered rate below what was asked. Writes every published
    digest (32 bytes each) to `digests_path` for the exactly-once check.
    """
    devices = sim_devices(ORG, seed=ORG)
    start = datetime.fromtimestamp(start_epoch, UTC)
    # Whole lifecycles only, as many as the asked rate needs for `seconds`.
    wanted = int(rate * seconds)
    messages: list[tuple[str, bytes]] = []
    with open(digests_path, "wb", buffering=1 << 20) as digests:
        for product_no in range(index, products, publishers):
            if len(messages) >= wanted:
                break
            product_start = start + timedelta(milliseconds=10 * product_no)
            for device_id, event in lifecycle(product_no, product_start):
                device = devices[device_id]
                digest = event_hash_digest(event)
                payload = orjson.dumps(
                    {"event": event, "sig": sign_digest(device.private_key, digest)}
                )
                messages.append((device.events_topic, payload + b"\n"))
                digests.write(digest)
    pipes = _TopicPipes(parse_mqtt_url(mqtt_url), f"soak-devices-{index}")
    for topic in sorted({topic for topic, _ in messages}):
        pipes.open(topic)
    ready.set()
    go.wait()
    interval = 1 / rate
    began = time.monotonic()
    # Message k is due at began_wall + k * interval: the publish time lags are measured from.
    began_wall = time.time()
    sent = 0
    while sent < len(messages):
        # Everything due by now, written in one go per topic; then sleep until the next is due.
        due = min(len(messages), int((time.monotonic() - began) / interval) + 1)
        chunks: dict[str, list[bytes]] = {}
        for topic, payload in messages[sent:due]:
            chunks.setdefault(topic, []).append(payload)
        for topic, chunk in chunks.items():
            pipes.write(topic, chunk)
        sent = due
        # At least one tick's sleep: a wait only past 2 ms never came at 500 or more messages/s
        # a publisher (the next one is due sooner), so each publisher spun on a whole core
        # that the pipeline it measures needed. Lags count from when a message was due.
        time.sleep(max(PUBLISH_TICK_S, began + sent * interval - time.monotonic()))
    publishing_s = time.monotonic() - began
    # Each mosquitto_pub sends what it has read, waits for its PUBACKs, then exits.
    clean = pipes.close_all()
    Path(result_path).write_bytes(
        orjson.dumps(
            {
                "sent": sent,
                "acked": sent if clean else -1,
                "publishing_s": publishing_s,
                "began_wall": began_wall,
                "interval_s": interval,
            }
        )
    )


# --- workers (child processes) ----------------------------------------------------------------


@dataclass
class Worker:
    name: str
    args: list[str]
    ready_text: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    rss: dict[str, float] = field(default_factory=dict)
    # (seconds since the load began, VmRSS MiB), every 15 s: a plateau is a high-water mark
    # of bounded buffers, a slope that goes on is a leak.
    rss_series: list[tuple[float, float]] = field(default_factory=list)

    def start(self, env: dict[str, str], log_dir: Path) -> None:
        self.log = log_dir / f"{self.name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracefin.cli", *self.args],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        assert self.log is not None
        deadline = time.monotonic() + timeout
        while self.ready_text not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not come up:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def memory(self, field_name: str) -> float:
        """VmRSS (now) or VmHWM (peak) in MiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def sample_rss(workers: list[Worker], seconds: float) -> None:
    """Note each live worker's VmRSS at `seconds` since the load began."""
    for worker in workers:
        if worker.alive:
            worker.rss_series.append((round(seconds), round(worker.memory("VmRSS"), 1)))


# --- setup and measurements ------------------------------------------------------------------


def seed(conn: Conn, products: int, chain: Chain) -> None:
    """Devices, products, a supervised warehouse, a line, and lots 0, 10, … 190 pledged.

    Pledged as `tracefin lot pledge` records them (registry, row, journal), so the audit holds;
    a pledge costs a transaction, hence only twenty.
    """
    register_sim_devices(conn, ORG, seed=ORG)
    register_sim_sites(conn, ORG)  # its devices' custody and sale events count as evidence
    bank, _ = registry_store.add_org(conn, "bank", "financier")
    service.add_warehouse(conn, JOURNAL, ORG, WAREHOUSE, "Cold store")
    service.supervise(conn, JOURNAL, "bank", WAREHOUSE)
    owner = registry_store.get_org(conn, ORG)
    assert owner is not None
    gtins = sorted({gtin_for(number) for number in range(min(products, 100_000))})
    conn.execute(
        "INSERT INTO products (gtin, owner_org_id, name, category, unit_price_minor, currency)"
        " SELECT g, %s, 'Dumplings', 'frozen', 200, 'CNY' FROM unnest(%s::text[]) g",
        (owner.id, gtins),
    )
    line = service.open_line(conn, JOURNAL, "bank", ORG, "1000000.00", "CNY")
    for number in range(0, min(products, PLEDGED_LOTS * 10), 10):
        uri = lot_uri(gtin_for(number), f"L{number:07d}")
        key = pledges.lot_key(uri)
        tx = PledgeRegistry(chain).pledge(key, pledges.org_address(bank), bytes(32))
        conn.execute(
            "INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, %s, %s)",
            (uri, gtin_for(number), f"L{number:07d}"),
        )
        # Pledged before its events arrive: the units they will bring.
        credit.add_pledge(conn, uri, line.id, key, WAREHOUSE, tx, ITEMS_PER_LOT)
        JOURNAL.write(
            conn,
            "bank",
            "pledged",
            uri,
            {"line": line.id, "lot_key": "0x" + key.hex(), "tx": "0x" + tx.hex()},
        )


class AutovacuumStandIn(threading.Thread):
    """ANALYZE every `every_s` while the server's autovacuum is off (as on the shared development
    server): the workers' tables grow from empty, and without statistics their plans stay those of
    empty tables, which no production server (autovacuum on) would keep."""

    def __init__(self, database_url: str, every_s: float = 20.0) -> None:
        super().__init__(daemon=True, name="autovacuum-stand-in")
        self._database_url = database_url
        self._every_s = every_s
        self._finished = threading.Event()
        self.runs = 0
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
        self.autovacuum = str(row[0]) if row else "unknown"

    def run(self) -> None:
        if self.autovacuum == "on":
            return
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            while not self._finished.wait(self._every_s):
                conn.execute("ANALYZE")
                self.runs += 1

    def stop(self) -> None:
        self._finished.set()
        self.join(60)


class PublishClock:
    """When each published event was due (its publisher's start + its place in the pace), and
    how far behind those times a worker is: the age of the oldest due event it has not passed.

    Publishers write their digests in publishing order, so one pointer per publisher and per
    worker walks forward over the ones the worker has passed (log position below its
    boundary); an event not yet stored (still in the broker or a worker's queue) stops it."""

    # The first probe past the last passed event is small and each full one doubles: a worker
    # behind is found with one short query, not one of 20 000 digests a second, which took a
    # tenth of a core from the run it measures.
    FIRST_PROBE = 64
    BATCH = 20_000

    def __init__(self, digest_files: list[Path], interval_s: float, start_wall: float) -> None:
        self._digests = [path.read_bytes() for path in digest_files]
        self._interval = interval_s
        self._start = start_wall
        self._passed: dict[str, list[int]] = {}

    def behind(self, conn: Conn, worker: str, boundary: int) -> float:
        """Seconds since the oldest due event `worker` has not passed was due (0: none)."""
        now = time.time()
        passed = self._passed.setdefault(worker, [0] * len(self._digests))
        worst = 0.0
        for i, data in enumerate(self._digests):
            total = len(data) // 32
            k = passed[i]
            size = self.FIRST_PROBE
            while k < total:
                chunk = [data[o : o + 32] for o in range(k * 32, min(total, k + size) * 32, 32)]
                done = {
                    bytes(row[0])
                    for row in conn.execute(
                        "SELECT event_hash FROM log_entries"
                        " WHERE event_hash = ANY(%s) AND log_index < %s",
                        (chunk, boundary),
                    )
                }
                advanced = next((n for n, d in enumerate(chunk) if d not in done), len(chunk))
                k += advanced
                if advanced < len(chunk):
                    break
                size = min(size * 2, self.BATCH)
            passed[i] = k
            if k < total:
                worst = max(worst, now - (self._start + k * self._interval))
        return worst


def finance_cursor(conn: Conn) -> int:
    row = conn.execute("SELECT next_index FROM log_cursors WHERE worker = 'finance'").fetchone()
    return int(row[0]) if row else 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def exactly_once(
    conn: Conn, digest_files: list[Path], publishers: list[dict[str, Any]]
) -> dict[str, int]:
    """Published digests against the events table, in SQL (millions do not fit a Python set).
    Leaves them in the temp table `published` with the time each was due (`due_at`)."""
    conn.execute(
        "CREATE TEMP TABLE published (event_hash bytea NOT NULL, due_at timestamptz NOT NULL)"
    )
    with conn.cursor().copy("COPY published (event_hash, due_at) FROM STDIN") as copy:
        for path, publisher in zip(digest_files, publishers, strict=True):
            data = path.read_bytes()
            start, interval = float(publisher["began_wall"]), float(publisher["interval_s"])
            for k, offset in enumerate(range(0, len(data), 32)):
                due = datetime.fromtimestamp(start + k * interval, UTC)
                copy.write_row((data[offset : offset + 32], due))
    conn.execute("CREATE INDEX ON published (event_hash)")
    conn.execute("ANALYZE published")
    row = conn.execute(
        "SELECT (SELECT count(*) FROM published), (SELECT count(DISTINCT event_hash) FROM"
        " published), (SELECT count(*) FROM events), (SELECT count(DISTINCT event_hash) FROM"
        " events), (SELECT count(*) FROM published p WHERE NOT EXISTS (SELECT 1 FROM events e"
        " WHERE e.event_hash = p.event_hash)), (SELECT count(*) FROM events e WHERE NOT EXISTS"
        " (SELECT 1 FROM published p WHERE p.event_hash = e.event_hash)),"
        " (SELECT count(*) FROM dead_letters)"
    ).fetchone()
    assert row is not None
    keys = ("published", "published_distinct", "stored", "stored_distinct", "lost", "unexpected")
    result = dict(zip((*keys, "dead_letters"), (int(v) for v in row), strict=True))
    result["exactly_once"] = int(
        result["lost"] == result["unexpected"] == result["dead_letters"] == 0
        and result["published"] == result["published_distinct"] == result["stored"]
        and result["stored"] == result["stored_distinct"]
    )
    return result


def anchoring_lags(conn: Conn, deployment_id: int) -> tuple[float, float, float]:
    """p50, p99, max of due to be published → batch recorded, over every anchored event
    (`published` as exactly_once left it)."""
    row = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) FROM ("
        "  SELECT extract(epoch FROM b.anchored_at - p.due_at) AS lag"
        "  FROM log_entries l JOIN published p ON p.event_hash = l.event_hash"
        "  JOIN LATERAL (SELECT anchored_at FROM anchor_batches b WHERE b.deployment_id = %s"
        "   AND b.first_index <= l.log_index ORDER BY b.first_index DESC LIMIT 1) b ON true) x",
        (deployment_id,),
    ).fetchone()
    assert row is not None
    assert row[0] is not None
    return float(row[0]), float(row[1]), float(row[2])


# --- the run -----------------------------------------------------------------------------------


def run(
    args: argparse.Namespace, database_url: str, mqtt_url: str, rpc_url: str, work: Path
) -> int:
    seconds = args.minutes * 60
    products = int(args.rate * seconds / EVENTS_PER_PRODUCT) + args.publishers + 1
    with psycopg.connect(database_url, autocommit=True) as conn:
        began = time.perf_counter()
        deployment = ensure_deployment(conn, connect(rpc_url), DEVNET_PRIVATE_KEY).deployment
        operator = Chain(
            connect(rpc_url),
            deployment.anchor_address,
            deployment.pledge_address,
            DEVNET_PRIVATE_KEY,
        )
        seed(conn, products, operator)
        print(f"seeded the registry for {products} products in {time.perf_counter() - began:.1f}s")
    api_port = free_port()
    env = {
        **os.environ,
        "TRACEFIN_DATABASE_URL": database_url,
        "TRACEFIN_MQTT_URL": mqtt_url,
        "TRACEFIN_CHAIN_RPC_URL": rpc_url,
        "TRACEFIN_API_PORT": str(api_port),
    }
    workers = [
        Worker(f"ingest-{i}", ["ingest", "--client-id", f"soak-ingest-{i}"], "MQTT subscribed")
        for i in range(args.ingest_workers)
    ]
    workers += [
        Worker("anchor", ["anchor"], "this process is the leader"),
        Worker("finance", ["finance"], "finance worker running"),
        Worker("api", ["api"], "Application startup complete"),
    ]
    try:
        for worker in workers:
            worker.start(env, work)
        for worker in workers:
            worker.wait_ready()
        for worker in workers:
            worker.rss["idle"] = worker.memory("VmRSS")
        return measure(args, database_url, mqtt_url, rpc_url, work, workers, products, api_port)
    finally:
        for worker in workers:
            worker.stop()


def measure(
    args: argparse.Namespace,
    database_url: str,
    mqtt_url: str,
    rpc_url: str,
    work: Path,
    workers: list[Worker],
    products: int,
    api_port: int,
) -> int:
    """Run the load, then drain, check and report; the workers are up and idle."""
    seconds = args.minutes * 60
    with psycopg.connect(database_url, autocommit=True) as conn:
        deployment = log_store.current_deployment(conn)
    assert deployment is not None

    # Event times lie in the past, 10 ms a product, so nothing is refused as in the future.
    start_epoch = (
        datetime.now(UTC) - timedelta(hours=1) - timedelta(milliseconds=10 * products)
    ).timestamp()
    spawn = multiprocessing.get_context("spawn")
    digest_files = [work / f"digests-{i}.bin" for i in range(args.publishers)]
    result_files = [work / f"publisher-{i}.json" for i in range(args.publishers)]
    ready = [spawn.Event() for _ in range(args.publishers)]
    go = spawn.Event()
    children = [
        spawn.Process(
            target=publish_share,
            args=(
                mqtt_url,
                i,
                args.publishers,
                products,
                args.rate / args.publishers,
                seconds,
                start_epoch,
                str(digest_files[i]),
                str(result_files[i]),
                ready[i],
                go,
            ),
            # Ended with the soak however it ends; their mosquitto_pub see their input close.
            daemon=True,
        )
        for i in range(args.publishers)
    ]
    began = time.perf_counter()
    for child in children:
        child.start()
    # Signed before the clock starts, so the load offered is the load asked.
    for child, signed in zip(children, ready, strict=True):
        while not signed.wait(1):
            if not child.is_alive():
                raise RuntimeError("a publisher died while signing its messages")
    print(f"pre-signed the load in {time.perf_counter() - began:.0f}s", flush=True)
    stand_in = AutovacuumStandIn(database_url)
    stand_in.start()
    # Live samples count from the go signal (each publisher starts within milliseconds of it;
    # the per-event anchoring lags at the end use each publisher's own start).
    clock = PublishClock(digest_files, args.publishers / args.rate, time.time())
    load_began = time.monotonic()
    go.set()
    warm_at = load_began + min(60.0, seconds * 0.25)
    finance_lags: list[float] = []
    anchor_ages: list[float] = []
    not_ready = 0
    last_print = load_began
    with psycopg.connect(database_url, autocommit=True) as conn:
        while any(child.is_alive() for child in children):
            time.sleep(1)
            now = time.monotonic()
            dead = [w.name for w in workers if not w.alive]
            if dead:
                print(f"worker(s) died: {dead}")
                break
            size = log_store.log_size(conn)
            anchored = log_store.anchored_end(conn, deployment.id)
            cursor = finance_cursor(conn)
            finance_lags.append(clock.behind(conn, "finance", cursor))
            anchor_ages.append(clock.behind(conn, "anchor", anchored))
            if "warm" not in workers[0].rss and now >= warm_at:
                for worker in workers:
                    worker.rss["warm"] = worker.memory("VmRSS")
            if int(now - load_began) % 5 == 0:
                try:
                    probe = httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=5)
                    not_ready += probe.status_code != 200
                except httpx.HTTPError:
                    not_ready += 1
            if now - last_print >= 15:
                last_print = now
                sample_rss(workers, now - load_began)
                print(
                    f"  t={now - load_began:5.0f}s log {size} anchored {anchored} finance"
                    f" {cursor}; lag anchor {anchor_ages[-1]:.1f}s finance {finance_lags[-1]:.1f}s",
                    flush=True,
                )
        for child in children:
            child.join(DRAIN_TIMEOUT_S)
        load_s = time.monotonic() - load_began
        for worker in workers:
            if worker.alive:
                worker.rss["end"] = worker.memory("VmRSS")
                worker.rss.setdefault("warm", worker.rss["end"])
        sent = [orjson.loads(path.read_bytes()) for path in result_files if path.exists()]
        published = sum(int(item["sent"]) for item in sent)
        publishing_s = max((float(item["publishing_s"]) for item in sent), default=load_s)
        # Drain: everything stored, positioned, anchored and applied by finance.
        stored_all_s: float | None = None
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and all(w.alive for w in workers):
            stored = conn.execute("SELECT count(*) FROM events").fetchone()
            if stored == (published,) and stored_all_s is None:
                stored_all_s = time.monotonic() - load_began
            size = log_store.log_size(conn)
            if (
                stored == (published,)
                and size == published
                and log_store.anchored_end(conn, deployment.id) == size
                and finance_cursor(conn) == size
            ):
                break
            finance_lags.append(clock.behind(conn, "finance", finance_cursor(conn)))
            if time.monotonic() - last_print >= 15:
                last_print = time.monotonic()
                sample_rss(workers, last_print - load_began)
            time.sleep(1)
        drained_s = time.monotonic() - load_began
        # Committed, not received: `received_at` is when a worker read the message, which can be
        # long before its commit when the worker falls behind.
        storing_s = stored_all_s if stored_all_s is not None else drained_s
        stand_in.stop()
        check = exactly_once(conn, digest_files, sent)
        lag_p50, lag_p99, lag_max = anchoring_lags(conn, deployment.id)
        report = None
        audit_s = 0.0
        if not args.no_audit:
            began = time.perf_counter()
            report = audit(conn, connect(rpc_url), JOURNAL)
            audit_s = time.perf_counter() - began
    for worker in workers:
        worker.rss["peak"] = worker.memory("VmHWM") if worker.alive else float("nan")
    died = [worker.name for worker in workers if not worker.alive]

    offered = published / publishing_s
    stored_rate = check["stored"] / storing_s if storing_s > 0 else 0.0
    print(f"\nsoak: {args.minutes} min at {args.rate} events/s asked, {args.publishers} publishers")
    print(
        f"offered          : {offered:8.0f} events/s ({published} published in {publishing_s:.0f}s)"
    )
    print(
        f"stored           : {stored_rate:8.0f} events/s (all committed {storing_s:.0f}s after"
        " the load began)"
    )
    print(f"drained          : {drained_s:8.0f}s after the load began (stored, anchored, applied)")
    print(
        f"anchoring lag    : p50 {lag_p50:.2f}s  p99 {lag_p99:.2f}s  max {lag_max:.2f}s"
        " (per event, from when it was due to be published)"
    )
    print(
        f"finance lag      : p50 {statistics.median(finance_lags or [0]):.2f}s"
        f"  p99 {percentile(finance_lags, 0.99):.2f}s  max {max(finance_lags or [0]):.2f}s"
        " (sampled each second, from publish times)"
    )
    for worker in workers:
        growth = 100 * (worker.rss.get("end", float("nan")) / worker.rss["warm"] - 1)
        print(
            f"RSS {worker.name:<12} : idle {worker.rss['idle']:6.1f} MiB, after warm-up"
            f" {worker.rss['warm']:6.1f}, end {worker.rss.get('end', float('nan')):6.1f}"
            f" ({growth:+.1f}%), peak {worker.rss['peak']:6.1f}"
        )
        if worker.name.startswith("ingest"):
            # Each minute, to see whether the growth levels off (and falls once drained).
            minutes = [(t, rss) for t, rss in worker.rss_series if t % 60 < 15]
            print("                   " + ", ".join(f"{t}s {rss:.0f}" for t, rss in minutes))
    print(
        f"exactly once     : {'yes' if check['exactly_once'] else 'NO'} ({check['published']}"
        f" published, {check['stored']} stored, {check['lost']} lost,"
        f" {check['unexpected']} unexpected, {check['dead_letters']} dead letters)"
    )
    # A mosquitto_pub that failed (exit status not 0) may have left messages unpublished: then
    # "lost" counts what never reached the broker, not what tracefin lost.
    publishers_clean = len(sent) == args.publishers and all(int(i["acked"]) >= 0 for i in sent)
    print(f"publishers       : {'all exited cleanly' if publishers_clean else 'NOT ALL CLEAN'}")
    if report is not None:
        print(f"audit            : {'clean' if report.clean else 'FINDINGS'} ({audit_s:.0f}s)")
        for finding in report.findings[:5]:
            print(f"                   {finding.kind}: {finding.detail}")
    print(f"API /readyz      : {not_ready} non-200 answers; workers died: {died or 'none'}")
    print(
        f"PostgreSQL       : autovacuum {stand_in.autovacuum}"
        + (f"; the soak ran ANALYZE {stand_in.runs} times instead" if stand_in.runs else "")
    )
    figures: dict[str, Any] = {
        "postgres_autovacuum": stand_in.autovacuum,
        "analyze_runs_by_soak": stand_in.runs,
        "minutes": args.minutes,
        "target_rate": args.rate,
        "publishers": args.publishers,
        "ingest_workers": args.ingest_workers,
        "offered_events_per_s": round(offered),
        "stored_events_per_s": round(stored_rate),
        "drained_after_s": round(drained_s, 1),
        "anchoring_lag_s": {
            "p50": round(lag_p50, 3),
            "p99": round(lag_p99, 3),
            "max": round(lag_max, 3),
        },
        "finance_lag_s": {
            "p50": round(statistics.median(finance_lags or [0]), 3),
            "p99": round(percentile(finance_lags, 0.99), 3),
            "max": round(max(finance_lags or [0]), 3),
        },
        "rss_mib": {
            worker.name: {key: round(value, 1) for key, value in worker.rss.items()}
            | {
                "growth_pct": round(
                    100 * (worker.rss.get("end", float("nan")) / worker.rss["warm"] - 1), 1
                )
            }
            for worker in workers
        },
        "rss_series_mib": {worker.name: worker.rss_series for worker in workers},
        "exactly_once": check,
        "publishers_clean": publishers_clean,
        "audit_clean": None if report is None else report.clean,
        "audit_findings": [] if report is None else sorted({f.kind for f in report.findings}),
        "readyz_failures": not_ready,
        "workers_died": died,
    }
    save_result("soak", figures)
    ok = check["exactly_once"] and not died and (report is None or report.clean)
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=5_000, help="target events/s, all publishers")
    parser.add_argument("--ingest-workers", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--no-audit", action="store_true", help="skip the final audit")
    parser.add_argument("--keep", action="store_true", help="keep logs and digests afterwards")
    args = parser.parse_args()
    # Stopped with SIGTERM, unwind as for Ctrl-C: the finally blocks stop the workers, the
    # publishers, the broker and the chain, and drop the scratch database.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    work = Path(tempfile.mkdtemp(prefix="tracefin-soak-"))
    broker = start_mosquitto(work / "mosquitto")
    chain = start_anvil()
    status = 1
    try:
        with scratch_database(ADMIN_URL, "tracefin_soak") as database_url:
            status = run(args, database_url, broker.url, chain.url, work)
    finally:
        broker.stop()
        chain.stop()
    if status == 0 and not args.keep:
        shutil.rmtree(work, ignore_errors=True)  # the digests alone are 32 bytes an event
    else:
        print(f"logs and digests kept in {work}")
    raise SystemExit(status)


if __name__ == "__main__":
    main()
