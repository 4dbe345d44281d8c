"""The MQTT side of a test: registered devices and a listener for their receipts and rejects."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as mqtt


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
