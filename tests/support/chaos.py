"""Chaos-suite helpers: private PostgreSQL, restartable broker and chain, device stream, checks."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from psycopg import sql

from epcis.event_hash import event_hash_digest
from epcis.identifiers import lot_uri
from epcis.signatures import sign_digest
from finance import pledges, service, valuation
from finance.audit import full_audit as audit
from finance.pledges import PledgeRegistry
from finance.store import attribution, credit
from finance.worker import FinanceConfig, FinanceWorker
from ingest.mqtt_link import new_client
from ledger import log_store
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from ledger.log_store import Deployment
from records import registry_store
from records.db import Conn
from tests.support.finance import snapshot
from tests.support.processes import WorkerProcess
from tests.support.world import EVERY_UNIT, JOURNAL
from tracefin.embedded import (
    ANVIL_BINARY,
    ServiceUnavailable,
    free_port,
    mosquitto_config,
    wait_for_port,
)
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import (
    WAREHOUSE_GLN,
    Publication,
    Publisher,
    gtin_for,
    lifecycle,
    register_sim_devices,
    register_sim_sites,
    sim_devices,
)

WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
EVENTS_PER_PRODUCT = 7
# Lots 0, 10, …, 140 are pledged (on chain, as `tracefin lot pledge` records them), so their
# shipments freeze the line; a pledge costs a transaction, so not more of them.
PLEDGED = range(0, 150, 10)


# --- a private PostgreSQL cluster ------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl live: TRACEFIN_TEST_PG_BINDIR, else the newest Debian install."""
    configured = os.environ.get("TRACEFIN_TEST_PG_BINDIR")
    if configured:
        return Path(configured)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class PrivatePostgres:
    """A cluster of the chaos suite's own, to restart and starve; never the shared server.

    initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user and the
    cluster lives under /tmp (pytest's temp dirs are 0700, which that user cannot enter).
    """

    def __init__(self, *, max_connections: int = 30) -> None:
        bindir = postgres_bindir()
        if bindir is None or not (bindir / "pg_ctl").exists():
            raise ServiceUnavailable("no PostgreSQL server binaries (set TRACEFIN_TEST_PG_BINDIR)")
        self._bindir = bindir
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable("running as root and no `postgres` user") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServiceUnavailable("running as root and no runuser to drop privileges")
            self._as_postgres = [runuser, "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="tracefin-chaos-pg-"))
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = free_port()
        self.max_connections = max_connections
        self._data = self.root / "data"
        self._log = self.root / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_postgres, str(self._bindir / tool), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()

    def start(self) -> None:
        # fsync off: the faults here are process crashes, after which the OS still holds every
        # written WAL page, so committed data survives without paying for disk flushes.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            f" -c max_connections={self.max_connections} -c fsync=off"
            " -c full_page_writes=off -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clean shutdown, clients cut off) or `immediate` (a crash: WAL recovery)."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        if self._data.exists():
            self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# --- a restartable broker ----------------------------------------------------------------------


class Broker:
    """Mosquitto with tracefin's settings, persistence that works, and $SYS every second.

    Restarted on the same port with the same data dir, so persistent sessions and their queued
    messages come back. Run as root, mosquitto drops to the `mosquitto` user, which cannot write
    a root-owned temp dir (persistence then silently does nothing): `user root` keeps it root.
    """

    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ServiceUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        self._binary = binary
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = mosquitto_config(self.port, self.data_dir) + "sys_interval 1\n"
        (self.data_dir / "mosquitto.conf").write_text(conf)
        self.starts += 1
        self.process = subprocess.Popen(
            [self._binary, "-c", str(self.data_dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, self.process, timeout=10)

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file on the way out."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def persisted(self) -> bool:
        return (self.data_dir / "mosquitto.db").exists()


class StoreWatch:
    """Follows `$SYS/broker/store/messages/count`: how many messages the broker holds."""

    def __init__(self, mqtt_url: str) -> None:
        self.latest = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._client, address = new_client(mqtt_url, f"chaos-sys-{secrets.token_hex(3)}")
        self._client.on_message = self._on_message
        self._client.on_connect = lambda client, *args: client.subscribe(
            "$SYS/broker/store/messages/count"
        )
        self._client.connect(address.host, address.port)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.latest = int(msg.payload)
            self.peak = max(self.peak, self.latest)

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.latest

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# --- a restartable chain node ------------------------------------------------------------------


class Anvil:
    """anvil whose chain survives a restart (`--state`: loaded at start, dumped at SIGTERM).

    `reset()` starts a fresh chain on the same port instead: what a devnet reset looks like.
    """

    def __init__(self, state_file: Path) -> None:
        if not ANVIL_BINARY.exists():
            raise ServiceUnavailable("anvil not found: run `npm ci` in the project folder")
        self.state_file = state_file
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(ANVIL_BINARY),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--state",
                str(self.state_file),
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, self.process, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)  # in case a test left it stopped
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def reset(self) -> None:
        self.stop()
        self.state_file.unlink(missing_ok=True)
        self.start()


# --- simulated devices publishing a steady stream -----------------------------------------------


def signed_stream(org: str, products: range) -> Iterator[tuple[Publication, bytes]]:
    """Each product's lifecycle as signed single-event envelopes, with each event's digest.

    Event times lie in the past (10 ms a product), so none is refused as in the future.
    """
    devices = sim_devices(org, seed=org)
    start = datetime.now(UTC) - timedelta(hours=1) - timedelta(milliseconds=10 * products.stop)
    for product_no in products:
        product_start = start + timedelta(milliseconds=10 * product_no)
        for device_id, event in lifecycle(product_no, product_start):
            device = devices[device_id]
            digest = event_hash_digest(event)
            payload = orjson.dumps({"event": event, "sig": sign_digest(device.private_key, digest)})
            yield Publication(device.events_topic, payload), digest


class DeviceStream(threading.Thread):
    """Publishes the lifecycles of `products` at about `rate` QoS 1 messages/s, in order.

    Signing happens here, on the fly, so a test does not wait for its stream to be prepared;
    every digest handed to the client is recorded (the set the store must hold exactly once).
    """

    def __init__(self, mqtt_url: str, org: str, products: range, rate: float) -> None:
        super().__init__(daemon=True, name=f"stream-{org}")
        self.digests: list[bytes] = []
        self._org = org
        self._products = products
        self._interval = 1 / rate
        self._running = threading.Event()
        self._running.set()
        self._parked = threading.Event()
        self._stop_asked = threading.Event()
        self._end_asked = threading.Event()
        self._error: BaseException | None = None
        self.publisher = Publisher(mqtt_url, f"chaos-devices-{secrets.token_hex(3)}")

    @property
    def published(self) -> int:
        return len(self.digests)

    def run(self) -> None:
        try:
            next_at = time.monotonic()
            for publication, digest in signed_stream(self._org, self._products):
                if not self._running.is_set():
                    self._parked.set()
                    self._running.wait()
                    self._parked.clear()
                    next_at = time.monotonic()
                if self._stop_asked.is_set():
                    return
                # Ending only between products keeps every published lifecycle whole.
                if self._end_asked.is_set() and len(self.digests) % EVENTS_PER_PRODUCT == 0:
                    return
                self.publisher.publish(publication)
                self.digests.append(digest)
                next_at += self._interval
                ahead = next_at - time.monotonic()
                if ahead > 0.005:  # sleeping per message would cost more than it paces
                    time.sleep(ahead)
        except BaseException as exc:  # handed to the test thread in finish()
            self._error = exc

    def pause(self, timeout: float = 30) -> None:
        """Stop publishing and wait until the broker has acknowledged everything sent."""
        self._running.clear()
        wait_until(lambda: self._parked.is_set() or not self.is_alive(), timeout, "pausing")
        assert self.publisher.wait_acked(self.published, timeout), "broker did not ack all"

    def resume(self) -> None:
        self._running.set()

    def end(self) -> None:
        """Stop after the product in hand: for a test whose faults decide the stream's length."""
        self._end_asked.set()

    def wait_published(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: self.published >= count or not self.is_alive(), timeout, "publishing")
        if self._error is not None:
            raise self._error

    def finish(self, timeout: float = 90) -> None:
        """Wait until everything is published and the broker has acknowledged all of it."""
        self.join(timeout)
        if self._error is not None:
            raise self._error
        assert not self.is_alive(), f"stream still publishing after {timeout}s"
        assert self.publisher.wait_acked(self.published, timeout), (
            f"broker acknowledged {self.publisher.acked} of {self.published} messages"
        )

    def close(self) -> None:
        self._stop_asked.set()
        self._running.set()
        self.join(10)
        self.publisher.close()


# --- the deployment under test ----------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `predicate()` holds; an AssertionError naming `what` after `timeout`."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - began


def scalar(database_url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    """One value on a connection of its own: polls survive a restarted server this way."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def scalar_or_none(database_url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    try:
        return scalar(database_url, query, params)
    except psycopg.OperationalError:
        return None


def count_events(database_url: str) -> int:
    return int(scalar(database_url, "SELECT count(*) FROM events"))


def seed(conn: Conn, org: str, products: range, chain: Chain) -> None:
    """The devices, and a financier who supervises the warehouse and lends against some lots."""
    register_sim_devices(conn, org, seed=org)
    register_sim_sites(conn, org)
    bank, _ = registry_store.add_org(conn, "bank", "financier")
    service.add_warehouse(conn, JOURNAL, org, WAREHOUSE, "Cold store")
    service.supervise(conn, JOURNAL, "bank", WAREHOUSE)
    owner = registry_store.get_org(conn, org)
    assert owner is not None
    # One statement for all products: the per-product service call costs a journal row each.
    conn.execute(
        "INSERT INTO products (gtin, owner_org_id, name, category, unit_price_minor, currency)"
        " SELECT g, %s, 'Dumplings', 'frozen', 200, 'CNY' FROM unnest(%s::text[]) g"
        " ON CONFLICT DO NOTHING",
        (owner.id, sorted({gtin_for(number) for number in products})),
    )
    line = service.open_line(conn, JOURNAL, "bank", org, "100.00", "CNY")
    # What service.pledge records (registry, row, journal), for lots whose events are still to
    # come: the service itself wants the lot already in the supervised warehouse.
    for number in PLEDGED:
        uri = lot_uri(gtin_for(number), f"L{number:07d}")
        key = pledges.lot_key(uri)
        tx = PledgeRegistry(chain).pledge(key, pledges.org_address(bank), bytes(32))
        conn.execute(
            "INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, %s, %s)",
            (uri, gtin_for(number), f"L{number:07d}"),
        )
        credit.add_pledge(conn, uri, line.id, key, WAREHOUSE, tx, EVERY_UNIT)
        JOURNAL.write(
            conn,
            "bank",
            "pledged",
            uri,
            {"line": line.id, "lot_key": "0x" + key.hex(), "tx": "0x" + tx.hex()},
        )


@contextmanager
def twin_of(database_url: str) -> Iterator[str]:
    """A copy of the (seeded, not yet running) database, for the clean finance replay."""
    name = str(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    twin = f"{name}_twin"
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(twin), sql.Identifier(name)
            )
        )
    try:
        yield psycopg.conninfo.make_conninfo(database_url, dbname=twin)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (twin,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(twin)))


@dataclass
class Rig:
    """One tracefin deployment under test: database, broker, chain and worker processes."""

    database_url: str
    twin_url: str
    org: str
    products: range
    broker: Broker
    chain: Anvil
    deployment: Deployment
    work_dir: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    streams: list[DeviceStream] = field(default_factory=list)
    api_port: int = field(default_factory=free_port)

    def stream(self, rate: float) -> DeviceStream:
        """Devices start publishing the rig's products at `rate` messages/s."""
        stream = DeviceStream(self.broker.url, self.org, self.products, rate)
        self.streams.append(stream)
        stream.start()
        return stream

    def env(self, kind: str, **settings: str) -> dict[str, str]:
        env = {
            "TRACEFIN_DATABASE_URL": self.database_url,
            "TRACEFIN_MQTT_URL": self.broker.url,
            "TRACEFIN_CHAIN_RPC_URL": self.chain.url,
            "TRACEFIN_INGEST_BATCH_MAX_WAIT_MS": "20",
            # Small batches and a short wait keep the anchoring lag of a test's stream short;
            # a short receipt timeout keeps a dead node from parking the leader for 30 s.
            "TRACEFIN_ANCHOR_BATCH_SIZE": "2000",
            "TRACEFIN_ANCHOR_BATCH_MAX_WAIT_MS": "200",
            "TRACEFIN_ANCHOR_RECEIPT_TIMEOUT_S": "3",
            "TRACEFIN_API_PORT": str(self.api_port),
        }
        return env | {f"TRACEFIN_{key.upper()}": value for key, value in settings.items()}

    def add(self, name: str, **settings: str) -> WorkerProcess:
        """Start worker `name` (`ingest-…`, `anchor-…`, `finance`, `api`) as a child process."""
        kind = name.split("-")[0]
        args = {
            "ingest": ["ingest", "--client-id", f"chaos-{name}"],
            "anchor": ["anchor"],
            "finance": ["finance"],
            "api": ["api"],
        }[kind]
        worker = WorkerProcess(args, self.env(kind, **settings), self.work_dir, name)
        self.workers[name] = worker
        worker.start()
        return worker

    def wait_up(self, name: str, timeout: float = 60) -> None:
        """Until the current life of `name` is doing its job (subscribed, serving, running)."""
        worker = self.workers[name]
        text = {
            "ingest": "MQTT subscribed",
            "anchor": "anchor worker running",
            "finance": "finance worker running",
            "api": "Application startup complete",
        }[name.split("-")[0]]
        wait_until(lambda: text in self.current_log(name), timeout, f"{name} up")
        assert worker.alive, self.current_log(name)

    def current_log(self, name: str) -> str:
        worker = self.workers[name]
        path = self.work_dir / f"{worker.name}-{worker.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def restart(self, name: str) -> None:
        self.workers[name].start()

    def anchor_leader(self) -> str | None:
        """The anchor process whose current life took the leader lock."""
        for name, worker in self.workers.items():
            if (
                name.startswith("anchor")
                and worker.alive
                and "this process is the leader" in self.current_log(name)
            ):
                return name
        return None

    def api(self, path: str, timeout: float = 5) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.api_port}{path}", timeout=timeout)

    def crashed(self) -> dict[str, str]:
        """Workers that died on their own (not by a test's SIGKILL) or logged a traceback."""
        found = {}
        for name, worker in self.workers.items():
            log = worker.log_text()
            if not worker.alive:
                found[name] = f"exited {worker.process.returncode if worker.process else '?'}"
            elif "Traceback" in log:
                found[name] = log[log.index("Traceback") :][:2000]
        return found

    def stop(self) -> None:
        for stream in self.streams:
            stream.close()
        for worker in self.workers.values():
            worker.stop()


@contextmanager
def rig(database_url: str, work_dir: Path, products: range) -> Iterator[Rig]:
    """A private broker and chain, contracts deployed, `database_url` seeded and twinned."""
    org = f"chaos-{secrets.token_hex(3)}"
    try:
        broker = Broker(work_dir / "mosquitto")
        chain = Anvil(work_dir / "anvil-state.json")
    except ServiceUnavailable as exc:
        pytest.skip(f"chaos rig: {exc}")
    built: Rig | None = None
    try:
        broker.start()
        chain.start()
        with psycopg.connect(database_url, autocommit=True) as conn:
            deployment = ensure_deployment(conn, connect(chain.url), DEVNET_PRIVATE_KEY).deployment
            operator = Chain(
                connect(chain.url),
                deployment.anchor_address,
                deployment.pledge_address,
                DEVNET_PRIVATE_KEY,
            )
            seed(conn, org, products, operator)
        with twin_of(database_url) as twin_url:
            built = Rig(database_url, twin_url, org, products, broker, chain, deployment, work_dir)
            try:
                yield built
            finally:
                built.stop()
    finally:
        broker.stop()
        chain.stop()


# --- what must hold after every fault --------------------------------------------------------


@dataclass
class Outcome:
    """Figures of one faulted run, printed by the test (docs/reliability.md quotes them)."""

    published: int
    stored_after_s: float
    anchored_after_s: float
    finance_after_s: float
    audit_events: int
    audit_batches: int
    finance_rows: dict[str, int]

    def line(self) -> str:
        return (
            f"published {self.published}, all stored {self.stored_after_s:.1f}s after the last"
            f" publish ack, all anchored +{self.anchored_after_s:.1f}s, finance caught up"
            f" +{self.finance_after_s:.1f}s; audit clean over {self.audit_events} events and"
            f" {self.audit_batches} batches; finance equal to a clean replay"
            f" ({', '.join(f'{k} {v}' for k, v in self.finance_rows.items())})"
        )


def assert_exactly_once(conn: Conn, published: list[bytes]) -> None:
    """The events table holds each published event once, and nothing else."""
    assert len(set(published)) == len(published), "the stream itself repeated an event"
    rows = conn.execute("SELECT event_hash, count(*) FROM events GROUP BY event_hash").fetchall()
    stored = {bytes(digest): int(copies) for digest, copies in rows}
    missing = set(published) - stored.keys()
    extra = stored.keys() - set(published)
    doubled = {digest for digest, copies in stored.items() if copies > 1}
    assert not missing, f"{len(missing)} published events not stored (lost)"
    assert not extra, f"{len(extra)} stored events nobody published"
    assert not doubled, f"{len(doubled)} events stored more than once"
    dead = conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1").fetchall()
    assert not dead, f"valid events were dead-lettered: {dead}"


def all_anchored(conn: Conn, total: int) -> bool:
    deployment = log_store.current_deployment(conn)
    assert deployment is not None
    queued = conn.execute("SELECT count(*) FROM log_queue").fetchone()
    return (
        queued == (0,)
        and log_store.log_size(conn) == total
        and log_store.anchored_end(conn, deployment.id) == total
    )


def replay_finance(
    source: Conn, twin_url: str, order: list[bytes] | None = None
) -> dict[str, object]:
    """The finance end state of one uninterrupted in-process worker over the same events.

    The twin was copied from the seeded database before any worker ran; the faulted run's
    events (and their attestations) are copied into it, with the faulted run's log positions
    (`order` None) or with positions in the given order of digests (e.g. the order the devices
    published them).
    """
    columns = (
        "event_hash, event_time, event_time_zone_offset, event_type, action, biz_step,"
        " disposition, stage, read_point, biz_location, epcs, lots, org_id, device_id, topic,"
        " received_at, signature, context, event"
    )
    with psycopg.connect(twin_url, autocommit=True) as twin:
        attested = "event_hash, org_id, device_id, api_user, channel, signature, received_at"
        # Finance counts an event as evidence by its attestations: they come with the events.
        copies = [("events", columns, "ingest_seq"), ("attestations", attested, "id")]
        if order is None:
            copies.append(("log_entries", "log_index, event_hash, event_time", "log_index"))
        for table, cols, by in copies:
            with (
                source.cursor().copy(
                    f"COPY (SELECT {cols} FROM {table} ORDER BY {by}) TO STDOUT (FORMAT BINARY)"
                ) as out,
                twin.cursor().copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as into,
            ):
                for block in out:
                    into.write(block)
        if order is not None:
            twin.execute(
                "INSERT INTO log_entries (log_index, event_hash, event_time)"
                " SELECT p.i - 1, e.event_hash, e.event_time"
                " FROM unnest(%s::bytea[]) WITH ORDINALITY AS p(digest, i)"
                " JOIN events e ON e.event_hash = p.digest",
                (order,),
            )
        worker = FinanceWorker("unused", FinanceConfig(), JOURNAL)
        while worker.apply_next_chunk(twin):
            pass
        # What the running worker also does every second (no telemetry, nothing expires here).
        with twin.transaction():
            valuation.check_cold_chain(twin, JOURNAL, datetime.now(UTC))
            valuation.check_expiry(twin, JOURNAL, datetime.now(UTC))
        return snapshot(twin)


def settle_and_check(
    rig_: Rig,
    stream: DeviceStream,
    *,
    bound_s: float = 60,
) -> Outcome:
    """After the fault: everything stored once, anchored, audited clean, finance as a clean run."""
    stream.finish()
    total = stream.published
    url = rig_.database_url
    stored_after = wait_until(
        lambda: count_events(url) >= total, bound_s, f"storing {total} published events"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        assert_exactly_once(conn, stream.digests)
        anchored_after = wait_until(
            lambda: all_anchored(conn, total), bound_s, "anchoring every stored event"
        )
        finance_after = wait_until(
            lambda: attribution.cursor(conn, "finance") == total,
            bound_s,
            "finance following the log",
        )
        report = audit(conn, connect(rig_.chain.url), JOURNAL)
        assert not report.findings, [finding.as_json() for finding in report.findings[:10]]
        assert report.events_checked == total
        faulted = snapshot(conn)
        clean = replay_finance(conn, rig_.twin_url)
    # Known weakness since evidence authority (docs/reliability.md): which of a lot's movement
    # events raised its unauthorized_movement flag can differ between the faulted run and the
    # clean replay (same lot, same flag, same line state), and so can the order in which one
    # chunk's entries were written; the journals are compared as multisets without that index,
    # and without the movement_seen notes that follow from it (which movements met a line
    # already frozen and flagged).
    for snapshot_ in (faulted, clean):
        snapshot_["journal"] = sorted(
            (
                _movement_flag_unpositioned(row)
                for row in snapshot_["journal"]  # type: ignore[attr-defined]
                if row[1] != "movement_seen"
            ),
            key=repr,
        )
    for name in clean:
        only_faulted = _rows_only_in(faulted[name], clean[name])
        only_clean = _rows_only_in(clean[name], faulted[name])
        assert faulted[name] == clean[name], (
            f"finance table {name} differs from a clean run:"
            f" only in the faulted run {only_faulted[:5]}, only in the clean run {only_clean[:5]}"
        )
    # The story did happen, so the comparison compared something.
    assert faulted["cursor"] == [(total,)]
    assert faulted["receivables"], "no receivable was created"
    if total >= EVENTS_PER_PRODUCT * PLEDGED.stop:
        # Pledged lots shipped without a release: whatever order they arrived in, that froze
        # the line.
        assert [row[1] for row in faulted["lines"]] == ["frozen"], faulted["lines"]  # type: ignore[attr-defined]
    return Outcome(
        total,
        stored_after,
        anchored_after,
        finance_after,
        report.events_checked,
        report.batches_checked,
        {name: len(rows) for name, rows in faulted.items() if isinstance(rows, list)},  # type: ignore[misc]
    )


def business_state(snapshot_: dict[str, object]) -> dict[str, list[tuple[object, ...]]]:
    """A finance snapshot without log positions: what two orders of one event set can share."""
    rows: dict[str, Any] = snapshot_
    return {
        "lots": sorted(row[:8] for row in rows["lots"]),  # all but updated_log_index
        "members": sorted(rows["members"]),
        "evidence": sorted((row[0], row[2]) for row in rows["evidence"]),
        "flags": sorted(rows["flags"]),
        "lines": sorted(rows["lines"]),
        "movements": sorted(rows["movements"]),
        "receivables": sorted(rows["receivables"]),
        "journal": sorted(
            _without_arrival_order(row[:4])
            for row in rows["journal"]
            # Which movement of a lot finance learnt of after its line was frozen and flagged
            # (noted so that a refold does not react again) depends on arrival order.
            if row[1] != "movement_seen"
        ),
    }


def _without_arrival_order(entry: tuple[object, ...]) -> tuple[object, ...]:
    """A journal entry without what only arrival order decides: which of several movements of
    pledged goods froze the line is the one finance learnt of first (each one is flagged)."""
    actor, action, subject, detail = entry
    if action != "line_frozen" or not isinstance(detail, str):
        return entry
    return (actor, action, subject, orjson.dumps({**orjson.loads(detail), "lot": "*"}).decode())


def _rows_only_in(rows: object, other: object) -> list[object]:
    """Rows of one snapshot table missing from the other (for a failure message)."""
    if not isinstance(rows, list) or not isinstance(other, list):
        return [rows]
    return [row for row in rows if row not in other]


def _movement_flag_unpositioned(row: tuple[object, ...]) -> tuple[object, ...]:
    """A journal row without the log index of the event that raised a movement flag."""
    if row[1] == "flag_unauthorized_movement":
        return (*row[:4], None)
    return row
