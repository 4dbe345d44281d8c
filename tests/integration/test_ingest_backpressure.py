"""Ingest holds a bounded number of messages however many the broker sends it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from psycopg_pool import ConnectionPool

from ingest.mqtt_link import Inbound, MqttLink, new_client
from ingest.worker import IngestWorker, WorkerConfig
from tracefin.embedded import start_mosquitto

pytestmark = pytest.mark.integration

MAX_WAITING = 10


class CountingWorker(IngestWorker):
    """Records how many messages waited after each hand-over; stores nothing (no `run`)."""

    def __init__(self, config: WorkerConfig) -> None:
        super().__init__(cast(ConnectionPool, None), cast(MqttLink, None), config)
        self.most_waiting = 0
        self.delivered = 0

    def deliver(self, message: Inbound) -> None:
        super().deliver(message)
        self.delivered += 1
        self.most_waiting = max(self.most_waiting, len(self._inbox))

    def take(self) -> list[Inbound]:
        return self._next_batch()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_messages_beyond_max_waiting_stay_at_the_broker_and_all_arrive(tmp_path: Path) -> None:
    broker = start_mosquitto(tmp_path / "mosquitto")
    config = WorkerConfig(
        batch_size=5,
        batch_max_wait=timedelta(milliseconds=10),
        max_payload_bytes=1024,
        max_future_skew=timedelta(0),
        max_waiting=MAX_WAITING,
    )
    worker = CountingWorker(config)
    link = MqttLink(
        broker.url, "backpressure", ["tf/+/+/events"], worker.deliver, receive_maximum=MAX_WAITING
    )
    publisher, address = new_client(broker.url, "backpressure-publisher")
    total = 300
    try:
        link.start()
        assert link.connected
        publisher.connect(address.host, address.port)
        publisher.loop_start()
        for number in range(total):
            publisher.publish("tf/org/dev/events", str(number).encode(), qos=1)
        received: list[bytes] = []
        while len(received) < total:
            seen = len(received)
            wait_for(lambda seen=seen: worker.delivered > seen, "the stream stopped")
            batch = worker.take()
            received += [message.payload for message in batch]
            # Each ack may make the broker send more than one message (Mosquitto 2.0.11 sends
            # many more than the Receive Maximum): the worker must not take them all in.
            link.ack(batch)
            assert worker.most_waiting <= MAX_WAITING
        assert sorted(int(payload) for payload in received) == list(range(total))
        assert worker.most_waiting == MAX_WAITING  # the bound was reached, not just respected

        # Stopping while the MQTT thread waits for room: it gives up and the link stops.
        for number in range(total, total + 50):
            publisher.publish("tf/org/dev/events", str(number).encode(), qos=1)
        wait_for(lambda: worker.delivered >= total + MAX_WAITING, "no backlog formed")
        worker.request_stop()
        link.stop()
        assert worker.most_waiting <= MAX_WAITING
    finally:
        publisher.loop_stop()
        link.stop()
        broker.stop()
