"""Hostile payloads over a real broker to a real ingest worker: stored or dead-lettered, always."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcis.capture import WHOLE_PAYLOAD, CaptureResult, DeviceKey, capture
from epcis.event_hash import event_hash_digest, hash_id_from_digest
from epcis.signatures import address_of, sign_digest
from ingest.mqtt_link import new_client
from ledger.audit import audit
from records import registry_store
from records.db import Conn
from tests.support.examples import examples
from tests.support.hostile import (
    Raw,
    base_events,
    dump,
    hostile_events,
    hostile_payloads,
    nested,
)
from tests.support.mqtt import Listener
from tests.support.postgres import admin_url
from tests.support.processes import IngestProcess
from tracefin.embedded import ServiceUnavailable, start_mosquitto
from tracefin.schema import scratch_database
from tracefin.simulate import Publication, Publisher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT = 256 * 1024  # the worker's default TRACEFIN_INGEST_MAX_PAYLOAD_BYTES


@dataclass
class Rig:
    """One ingest worker on its own database, with a publisher and a listener on its broker."""

    url: str
    conn: Conn
    org: str
    worker: IngestProcess
    publisher: Publisher
    listener: Listener

    def device(self, *, signed: bool) -> tuple[DeviceKey, bytes | None]:
        key = secrets.token_bytes(32) if signed else None
        device_id = f"fz-{secrets.token_hex(5)}"
        registered = registry_store.add_device(
            self.conn, self.org, device_id, address_of(key) if key else None
        )
        return registered, key

    def publish(self, device: DeviceKey, payload: bytes, kind: str = "events") -> str:
        topic = f"tf/{device.org_slug}/{device.device_id}/{kind}"
        self.publisher.publish(Publication(topic, payload))
        return topic

    def answers(
        self, device: DeviceKey, count: int, timeout: float = 20
    ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """Receipts and rejects for a device once there are `count` of them together."""
        receipts = f"tf/{device.org_slug}/{device.device_id}/receipts"
        rejects = f"tf/{device.org_slug}/{device.device_id}/rejects"
        deadline = time.monotonic() + timeout
        while True:
            got = self.listener.received(receipts), self.listener.received(rejects)
            if len(got[0]) + len(got[1]) >= count:
                return got
            if time.monotonic() > deadline or not self.worker.alive:
                raise AssertionError(
                    f"{len(got[0])} receipts and {len(got[1])} rejects of {count}; worker alive:"
                    f" {self.worker.alive}\n{self.worker.log_text()[-3000:]}"
                )
            time.sleep(0.01)


@contextmanager
def _listening(mqtt_url: str) -> Iterator[Listener]:
    """conftest's Listener, opened here because the fixtures below outlive one test."""
    client, address = new_client(mqtt_url, f"fuzz-listener-{secrets.token_hex(4)}")
    state = Listener(client)
    client.on_message = state.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(address.host, address.port)
    client.subscribe([("tf/+/+/receipts", 1), ("tf/+/+/rejects", 1)])
    client.loop_start()
    try:
        assert subscribed.wait(10), "listener could not subscribe"
        yield state
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def _rig(url: str, mqtt_url: str, log_dir: Path) -> Iterator[Rig]:
    with psycopg.connect(url, autocommit=True) as conn:
        org = f"fuzz-{secrets.token_hex(3)}"
        registry_store.add_org(conn, org, "manufacturer")
        worker = IngestProcess(url, mqtt_url, log_dir)
        worker.start()
        publisher = Publisher(mqtt_url, f"fuzz-pub-{secrets.token_hex(4)}")
        try:
            worker.wait_until_subscribed()
            with _listening(mqtt_url) as listener:
                yield Rig(url, conn, org, worker, publisher, listener)
        finally:
            publisher.close()
            worker.stop()


@pytest.fixture(scope="module")
def rig(mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """A database of its own, so the final audit sees only what this module ingested."""
    with (
        scratch_database(admin_url(), "tracefin_test") as url,
        _rig(url, mqtt_url, tmp_path_factory.mktemp("fuzz-ingest")) as made,
    ):
        yield made


@pytest.fixture
def lone_rig(tmp_path: Path) -> Iterator[Rig]:
    """A broker, database and worker of its own: for payloads that may kill the worker.

    A private broker keeps a dying worker's unacknowledged message (which the broker would
    redeliver to the next member of the shared subscription) away from every other test.
    """
    try:
        broker = start_mosquitto(tmp_path / "mosquitto")
    except ServiceUnavailable as exc:
        pytest.skip(f"needs a private Mosquitto: {exc}")
    try:
        with (
            scratch_database(admin_url(), "tracefin_test") as url,
            _rig(url, broker.url, tmp_path) as made,
        ):
            yield made
    finally:
        broker.stop()


def _expected(payload: bytes, device: DeviceKey) -> CaptureResult:
    # Capture is pure and unit-fuzzed on its own; here it is the oracle for what the worker
    # must do with the payload (store, answer, dead-letter), which is what this file checks.
    return capture(
        payload,
        device,
        now=datetime.now(UTC),
        max_payload_bytes=LIMIT,
        max_future_skew=timedelta(minutes=10),
    )


def check_outcome(rig: Rig, device: DeviceKey, topic: str, payload: bytes) -> None:
    """Publish-side oracle vs. what the worker stored, dead-lettered and answered."""
    expected = _expected(payload, device)
    digests = [a.digest for a in expected.accepted]
    stored_before = {
        bytes(row[0])
        for row in rig.conn.execute(
            "SELECT event_hash FROM events WHERE event_hash = ANY(%s)", (digests,)
        ).fetchall()
    }
    rig.publisher.publish(Publication(topic, payload))
    receipts, rejects = rig.answers(device, len(expected.accepted) + len(expected.refused))

    # Receipts: one per accepted event; the first copy of a new event is `accepted`.
    seen = set(stored_before)
    wanted_receipts = []
    for digest in digests:
        status = "duplicate" if digest in seen else "accepted"
        seen.add(digest)
        wanted_receipts.append({"event_hash": hash_id_from_digest(digest), "status": status})
    assert receipts == wanted_receipts

    # Rejects and dead letters: one per refusal, with its reason and index, the payload kept.
    wanted = Counter((r.index, r.code.value) for r in expected.refused)
    assert Counter((r.get("index", WHOLE_PAYLOAD), r["reason"]) for r in rejects) == wanted
    rows = rig.conn.execute(
        "SELECT item_index, reason, payload FROM dead_letters WHERE topic = %s", (topic,)
    ).fetchall()
    assert Counter((row[0], row[1]) for row in rows) == wanted
    # The payload is kept once, in one of its rows; the others point at it by payload_sha256.
    assert all(bytes(row[2]) in (payload, b"") for row in rows)
    assert not rows or sum(bytes(row[2]) == payload for row in rows) == 1

    # Stored: exactly the new events, once each, under this device; nothing else.
    mine = rig.conn.execute(
        "SELECT event_hash, event, context FROM events WHERE device_id = %s", (device.device_id,)
    ).fetchall()
    assert sorted(bytes(row[0]) for row in mine) == sorted(set(digests) - stored_before)
    for digest, event, context in mine:
        # What the audit and the provenance page recompute: the identity survives jsonb.
        assert event_hash_digest(event, context) == bytes(digest), event
    assert rig.worker.alive


@st.composite
def signed_or_not(draw: st.DrawFn) -> tuple[bool, object]:
    """(signed, payload or event to sign): a signing device gets correctly signed envelopes."""
    if draw(st.booleans()):
        return True, draw(hostile_events())
    return False, draw(hostile_payloads())


@settings(
    max_examples=examples(150),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(signed_or_not())
def test_every_hostile_payload_is_stored_or_dead_lettered(
    rig: Rig, case: tuple[bool, object]
) -> None:
    signed, value = case
    device, key = rig.device(signed=signed)
    if signed:
        assert key is not None
        raw = dump(value)
        try:
            sig = sign_digest(key, event_hash_digest(orjson.loads(raw)))
        except (orjson.JSONDecodeError, ValueError):
            sig = "0x" + "11" * 65
        payload = b'{"event":' + raw + b',"sig":"' + sig.encode() + b'"}'
    else:
        assert isinstance(value, bytes)
        payload = value
    topic = f"tf/{device.org_slug}/{device.device_id}/events"
    check_outcome(rig, device, topic, payload)


@pytest.mark.parametrize(
    "build",
    [
        # Large but legal: a 250 KiB string, an array of 600 events, 20 000 numbers.
        lambda: dump({**base_events("1")[0], "ex:blob": "\u202e" * 80_000}),
        lambda: dump([base_events(str(n))[n % 6] for n in range(600)]),
        lambda: dump({**base_events("2")[1], "ex:numbers": [Raw("1e308")] * 20_000}),
        # Over the limit by one byte.
        lambda: dump({**base_events("3")[0], "ex:blob": "x" * LIMIT}),
    ],
    ids=["long-rtl-string", "600-events", "20000-numbers", "over-limit"],
)
def test_large_payloads_are_stored_or_dead_lettered(rig: Rig, build: Callable[[], bytes]) -> None:
    payload = build()
    device, _ = rig.device(signed=False)
    check_outcome(rig, device, f"tf/{device.org_slug}/{device.device_id}/events", payload)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_worker_memory_stays_bounded_under_hostile_load(rig: Rig) -> None:
    # The worker is a subprocess: its resident set is what an operator watches. Each round
    # sends ~2 MB of hostile input; a worker that kept any of it (payloads, details, answers)
    # would grow by megabytes a round, while a healthy one levels off after the warm-up.
    assert rig.worker.process is not None
    pid = rig.worker.process.pid
    if not Path(f"/proc/{pid}/status").exists():
        pytest.skip("no /proc on this platform")
    corpus = [dump({**base_events(str(n))[0], "ex:blob": "\u0301" * 100_000}) for n in range(4)] + [
        dump([1] * 2000),
        b"\xff" * 200_000,
        dump({"type": "ObjectEvent", "eventTime": "x" * 200_000}),
        dump([{**base_events(str(n))[0], "bizStep": "teleporting"} for n in range(600)]),
    ]

    def round_trip() -> None:
        for payload in corpus:
            device, _ = rig.device(signed=False)
            expected = _expected(payload, device)
            rig.publish(device, payload)
            rig.answers(device, len(expected.accepted) + len(expected.refused), timeout=60)

    for _ in range(2):  # warm-up: imports, pools, caches and allocator arenas settle
        round_trip()
    baseline = _rss_kib(pid)
    for _ in range(6):
        round_trip()
    grown = _rss_kib(pid) - baseline
    assert grown < 6 * 1024, f"worker RSS grew {grown} KiB in 6 rounds (baseline {baseline} KiB)"
    assert rig.worker.alive


def test_audit_of_everything_fuzzed_is_clean(rig: Rig) -> None:
    # Runs after the fuzzing above, on the same module database: every event the worker
    # stored from hostile input still rehashes to its identity.
    report = audit(rig.conn, None)
    assert report.events_checked > 0
    assert report.findings == []


# --- former poison messages: each on a worker and broker of its own, in case it dies again ----
# Each of these once made epcis.capture or epcis.telemetry raise: `tracefin ingest` exited,
# and the unacked message, redelivered to the restarted worker, killed it again.


def test_worker_survives_a_deeply_nested_event(lone_rig: Rig) -> None:
    device, _ = lone_rig.device(signed=False)
    poison = dump({**base_events("20")[0], "ex:deep": nested(300)})
    lone_rig.publish(device, poison)
    good = base_events("21")[0]
    lone_rig.publish(device, dump(good))
    receipts, rejects = lone_rig.answers(device, 2, timeout=15)
    assert [r["reason"] for r in rejects] == ["too_deeply_nested"]
    assert receipts == [
        {"event_hash": hash_id_from_digest(event_hash_digest(good)), "status": "accepted"}
    ]


def test_worker_survives_an_unhashable_type(lone_rig: Rig) -> None:
    device, _ = lone_rig.device(signed=False)
    lone_rig.publish(device, dump({**base_events("22")[0], "type": ["ObjectEvent"]}))
    good = base_events("23")[0]
    lone_rig.publish(device, dump(good))
    receipts, rejects = lone_rig.answers(device, 2, timeout=15)
    assert [r["reason"] for r in rejects] == ["wrong_type"]
    assert len(receipts) == 1


def test_worker_survives_telemetry_at_the_datetime_limit(lone_rig: Rig) -> None:
    device, _ = lone_rig.device(signed=False)
    lone_rig.publish(
        device,
        orjson.dumps({"time": "0001-01-01T00:00:00+01:00", "readings": {"t": 1}}),
        "telemetry",
    )
    good = base_events("24")[0]
    lone_rig.publish(device, dump(good))
    receipts, rejects = lone_rig.answers(device, 2, timeout=15)
    assert [r["reason"] for r in rejects] == ["invalid_telemetry"]
    assert len(receipts) == 1


# --- open bugs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["-0.0", "1e308", "18446744073709551616", "1e16"])
def test_numbers_survive_storage_with_their_hash(rig: Rig, token: str) -> None:
    device, _ = rig.device(signed=False)
    event = base_events(secrets.token_hex(4))[1]
    # A freezer sensor rounding to -0.0 is ordinary data, not an attack.
    event["sensorElementList"][0]["sensorReport"][0]["value"] = Raw(token)
    payload = dump(event)
    rig.publish(device, payload)
    receipts, _ = rig.answers(device, 1)
    assert [r["status"] for r in receipts] == ["accepted"]
    digest = event_hash_digest(orjson.loads(payload))
    row = rig.conn.execute(
        "SELECT event, context FROM events WHERE event_hash = %s", (digest,)
    ).fetchone()
    assert row is not None
    assert event_hash_digest(row[0], row[1]) == digest


def test_dead_letters_do_not_amplify_a_junk_array(rig: Rig) -> None:
    device, _ = rig.device(signed=False)
    payload = dump([1] * 3000)  # 6 KB
    topic = rig.publish(device, payload)
    rig.answers(device, 3000, timeout=60)
    stored = rig.conn.execute(
        "SELECT coalesce(sum(octet_length(payload)), 0) FROM dead_letters WHERE topic = %s",
        (topic,),
    ).fetchone()
    assert stored is not None
    assert stored[0] <= 4 * len(payload), (
        f"{stored[0]} bytes kept for a {len(payload)}-byte payload"
    )
