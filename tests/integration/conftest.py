"""Integration fixtures: real worker processes, an MQTT listener, device registration."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest

from epcis.signatures import address_of
from ingest.mqtt_link import end_session, new_client
from records import registry_store
from records.db import Conn
from tracefin.simulate import Publisher


class WorkerProcess:
    """A `tracefin` subcommand as a child process: started, killed and restarted at will."""

    def __init__(self, args: list[str], env: dict[str, str], log_dir: Path, name: str) -> None:
        self.args = args
        self.name = name
        self._env = {**os.environ, **env}
        self._log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self._log_dir / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracefin.cli", *self.args],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_for_log(self, text: str, timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {text!r} in its log:\n{self.log_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self._log_dir.glob(f"{self.name}-*.log"))
        )

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)


class IngestProcess(WorkerProcess):
    """`tracefin ingest` with a stable client id, so a restart resumes its MQTT session."""

    def __init__(self, database_url: str, mqtt_url: str, log_dir: Path, **settings: str) -> None:
        self.client_id = f"test-ingest-{secrets.token_hex(4)}"
        self.mqtt_url = mqtt_url
        env = {
            "TRACEFIN_DATABASE_URL": database_url,
            "TRACEFIN_MQTT_URL": mqtt_url,
            "TRACEFIN_INGEST_BATCH_MAX_WAIT_MS": "20",
            **{f"TRACEFIN_{key.upper()}": value for key, value in settings.items()},
        }
        super().__init__(["ingest", "--client-id", self.client_id], env, log_dir, self.client_id)

    def wait_until_subscribed(self, timeout: float = 30) -> None:
        self.wait_for_log("MQTT subscribed", timeout)

    def stop(self) -> None:
        """Kill the worker and end its persistent session.

        Mosquitto keeps dispatching a share of the group's messages to an offline member's
        session; a test's worker never comes back, so its session must not outlive the test.
        """
        super().stop()
        end_session(self.mqtt_url, self.client_id)


@pytest.fixture
def start_ingest(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> Iterator[Callable[..., IngestProcess]]:
    started: list[IngestProcess] = []

    def start(**settings: str) -> IngestProcess:
        worker = IngestProcess(database_url, mqtt_url, tmp_path, **settings)
        worker.start()
        worker.wait_until_subscribed()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@dataclass
class Listener:
    """Collects every receipt and reject, per topic, in arrival order."""

    client: mqtt.Client
    messages: dict[str, list[dict[str, object]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages[msg.topic].append(orjson.loads(msg.payload))

    def wait_for(self, topic: str, count: int, timeout: float = 30) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages[topic]) >= count:
                    return list(self.messages[topic])
            time.sleep(0.02)
        with self.lock:
            got = list(self.messages[topic])
            rejects = self.messages.get(topic.rsplit("/", 1)[0] + "/rejects", [])
        raise AssertionError(
            f"expected {count} messages on {topic}, got {len(got)}: {got[:5]}; rejects: {rejects}"
        )

    def received(self, topic: str) -> list[dict[str, object]]:
        with self.lock:
            return list(self.messages[topic])


@pytest.fixture
def listener(mqtt_url: str) -> Iterator[Listener]:
    client, address = new_client(mqtt_url, f"test-listener-{secrets.token_hex(4)}")
    state = Listener(client)
    client.on_message = state.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(address.host, address.port)
    client.subscribe([("tf/+/+/receipts", 1), ("tf/+/+/rejects", 1)])
    client.loop_start()
    assert subscribed.wait(10), "listener could not subscribe"
    yield state
    client.disconnect()
    client.loop_stop()


@dataclass(frozen=True)
class RegisteredDevice:
    org: str
    device_id: str
    private_key: bytes | None

    @property
    def events_topic(self) -> str:
        return f"tf/{self.org}/{self.device_id}/events"

    @property
    def telemetry_topic(self) -> str:
        return f"tf/{self.org}/{self.device_id}/telemetry"

    @property
    def receipts(self) -> str:
        return f"tf/{self.org}/{self.device_id}/receipts"

    @property
    def rejects(self) -> str:
        return f"tf/{self.org}/{self.device_id}/rejects"


@pytest.fixture
def publisher(mqtt_url: str) -> Iterator[Publisher]:
    client = Publisher(mqtt_url, f"test-pub-{secrets.token_hex(4)}")
    yield client
    client.close()


@pytest.fixture
def org(db: Conn) -> str:
    slug = f"org-{secrets.token_hex(4)}"
    registry_store.add_org(db, slug, "manufacturer")
    return slug


@pytest.fixture
def make_device(db: Conn, org: str) -> Callable[..., RegisteredDevice]:
    def make(*, signed: bool = True) -> RegisteredDevice:
        device_id = f"dev-{secrets.token_hex(4)}"
        key = secrets.token_bytes(32) if signed else None
        registry_store.add_device(db, org, device_id, address_of(key) if key else None)
        return RegisteredDevice(org, device_id, key)

    return make


@pytest.fixture
def start_anchor(
    fresh_database_url: str, chain_rpc_url: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(rpc_url: str | None = None, **settings: str) -> WorkerProcess:
        env = {
            "TRACEFIN_DATABASE_URL": fresh_database_url,
            "TRACEFIN_CHAIN_RPC_URL": rpc_url or chain_rpc_url,
            "TRACEFIN_ANCHOR_BATCH_SIZE": "1000",
            "TRACEFIN_ANCHOR_BATCH_MAX_WAIT_MS": "100",
            **{f"TRACEFIN_{key.upper()}": value for key, value in settings.items()},
        }
        worker = WorkerProcess(["anchor"], env, tmp_path, f"anchor-{len(started)}")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[Conn]:
    """An autocommit connection to this test's own database."""
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        yield connection
