"""Ingest's answers to devices are bounded: a broker that stops reading cannot make it grow."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ingest.mqtt_link import MqttLink
from tracefin.embedded import RunningService, start_mosquitto

pytestmark = pytest.mark.integration


def answer_a_stalled_broker(broker: RunningService, client_id: str) -> tuple[MqttLink, int]:
    """A link allowed 50 unsent answers, which offered 2 000 large ones to a broker that has
    stopped reading its socket (SIGSTOP); and how many it took."""
    link = MqttLink(
        broker.url,
        client_id,
        ["tf/+/+/events"],
        lambda message: None,
        receive_maximum=10,
        max_unsent_answers=50,
    )
    link.start()
    assert link.connected
    os.kill(broker.process.pid, signal.SIGSTOP)
    answer = b"x" * 65_536
    return link, sum(link.publish("tf/org/dev/receipts", answer, qos=0) for _ in range(2_000))


def test_answers_beyond_the_limit_are_dropped_while_the_broker_stalls(tmp_path: Path) -> None:
    broker = start_mosquitto(tmp_path / "mosquitto")
    link: MqttLink | None = None
    try:
        link, sent = answer_a_stalled_broker(broker, "answers-bound")
        # The socket buffers a few MB; then paho would queue the rest in memory, without limit.
        assert 50 <= sent < 2_000
        os.kill(broker.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while not link.publish("tf/org/dev/receipts", b"{}", qos=0):
            assert time.monotonic() < deadline, "answers never flowed again"
            time.sleep(0.05)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
        if link is not None:
            link.stop()
        broker.stop()


def test_answers_lost_with_their_connection_do_not_stop_the_next_ones(tmp_path: Path) -> None:
    """paho marks the QoS 0 answers still queued when it reconnects as failed, and its
    `is_published` then raises: they count as gone, and answering goes on without them."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    link: MqttLink | None = None
    try:
        link, sent = answer_a_stalled_broker(broker, "answers-lost")
        assert sent < 2_000  # the limit reached: answers wait, unwritten
        os.kill(broker.process.pid, signal.SIGKILL)  # gone, with what it had not read
        broker.process.wait()
        deadline = time.monotonic() + 10
        while link.connected:
            assert time.monotonic() < deadline, "the lost connection went unnoticed"
            time.sleep(0.05)
        time.sleep(2.5)  # paho's reconnect attempt (after 1 s) marks the queued answers failed
        # While the broker is away nothing is sent, and nothing raises.
        assert not any(link.publish("tf/org/dev/receipts", b"{}", qos=0) for _ in range(100))
    finally:
        if link is not None:
            link.stop()
        broker.stop()
