"""Stopping the ingest worker from a signal handler cannot hang the thread it interrupted."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import cast

from psycopg_pool import ConnectionPool

from ingest.handover import Handed
from ingest.mqtt_link import Inbound, MqttLink
from ingest.worker import IngestWorker, WorkerConfig

CONFIG = WorkerConfig(
    batch_size=10,
    batch_max_wait=timedelta(milliseconds=10),
    max_payload_bytes=1024,
    max_future_skew=timedelta(0),
    max_waiting=10,
)


def test_a_stop_request_takes_no_lock_the_interrupted_thread_may_hold() -> None:
    """SIGTERM's handler runs on the main thread, which runs the batches: if it lands while
    that thread holds the inbox's lock (inside `take`), the handler must not wait for it."""
    worker = IngestWorker(cast(ConnectionPool, None), cast(MqttLink, None), CONFIG)
    returned = threading.Event()

    def handler_interrupting_the_holder() -> None:
        with worker._inbox._lock:  # where the batch thread is when the signal lands
            worker.request_stop()
        returned.set()

    thread = threading.Thread(target=handler_interrupting_the_holder, daemon=True)
    thread.start()
    thread.join(10)
    assert returned.is_set(), "request_stop waited on a lock its own thread held"


def test_a_stopped_worker_finishes_and_closes_its_inbox() -> None:
    worker = IngestWorker(cast(ConnectionPool, None), cast(MqttLink, None), CONFIG)
    worker.request_stop()
    worker.run()  # nothing in hand: returns at once, the inbox closed behind it
    assert worker._inbox.put(cast(Inbound, None)) is Handed.REFUSED
