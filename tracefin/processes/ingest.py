"""Composition root of the `tracefin ingest` process: settings -> pool, MQTT link, worker.

With `--processes N` (N > 1) the command supervises N worker processes instead, each one a
member of the shared subscription with its own stable client id: one Python process is bound to
one core by the GIL, and a worker spends most of its time in Python (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from datetime import timedelta

from ingest.mqtt_link import Inbound, MqttLink
from ingest.topics import subscriptions
from ingest.worker import IngestWorker, WorkerConfig
from records.db import open_pool
from tracefin.process import collect_between_batches, freeze_startup_heap, stop_on_signals
from tracefin.settings import Settings
from tracefin.supervisor import Supervisor, Worker, say_to

log = logging.getLogger(__name__)


def default_client_id() -> str:
    # Stable across restarts so the broker resumes the persistent session and redelivers.
    return f"tracefin-ingest-{socket.gethostname()}"


def worker_client_ids(base: str, processes: int) -> list[str]:
    """One stable client id per worker process, so each restart resumes that worker's own
    persistent session and what the broker queued for it.

    The first keeps `base` itself: going from one process to several leaves no orphaned session
    behind (the broker keeps giving an offline member its share of the group). Going down from
    N processes leaves the sessions of the ones no longer run: end them (docs/operations.md).
    """
    return [base, *(f"{base}-{index}" for index in range(2, processes + 1))]


def run_ingest_processes(
    settings: Settings, *, processes: int, client_id: str | None = None
) -> None:
    """Run `processes` ingest workers: this process itself for one, else supervised children
    restarted with backoff like `tracefin up`'s workers, until SIGTERM/SIGINT."""
    if processes <= 1:
        run_ingest(settings, client_id=client_id)
        return
    if settings.database_url is None or settings.mqtt_url is None:
        raise SystemExit("tracefin ingest needs TRACEFIN_DATABASE_URL and TRACEFIN_MQTT_URL")
    settings.share_group()  # refused in production before any child starts
    if settings.environment == "production":
        # The shipped broker makes every client id its username: N children on one account
        # would be one client id, each connection taking over the others' session.
        raise SystemExit(
            "tracefin ingest --processes N is for one broker account per process, which"
            " production's Mosquitto does not give: run one `tracefin ingest --client-id"
            " tracefin-ingest-n` per account instead (docs/deployment.md)"
        )
    base = client_id or settings.ingest_client_id or default_client_id()
    stop = threading.Event()
    stop_on_signals(stop.set, "stopping the ingest worker processes")
    supervisor = Supervisor({**os.environ, "PYTHONUNBUFFERED": "1"}, None, say_to(sys.stderr))
    try:
        for worker_id in worker_client_ids(base, processes):
            supervisor.start(
                Worker(worker_id, ["ingest", "--processes", "1", "--client-id", worker_id])
            )
        while not stop.wait(0.5):
            supervisor.check()
    finally:
        # Each child finishes its batch in hand, commits, acks and disconnects on SIGTERM.
        supervisor.stop_all()


def run_ingest(settings: Settings, *, client_id: str | None = None) -> None:
    """Run one ingest worker until SIGTERM/SIGINT, then stop cleanly (commit, ack, disconnect)."""
    if settings.database_url is None or settings.mqtt_url is None:
        raise SystemExit("tracefin ingest needs TRACEFIN_DATABASE_URL and TRACEFIN_MQTT_URL")
    share_group = settings.share_group()  # refused in production before anything connects
    pool = open_pool(settings.database_url, min_size=1, max_size=settings.ingest_db_pool_size)
    config = WorkerConfig(
        batch_size=settings.ingest_batch_size,
        batch_max_wait=timedelta(milliseconds=settings.ingest_batch_max_wait_ms),
        max_payload_bytes=settings.ingest_max_payload_bytes,
        max_future_skew=settings.max_future_skew,
        receipt_qos=settings.ingest_receipt_qos,
        max_waiting=settings.ingest_receive_maximum,
    )

    def deliver(message: Inbound) -> None:
        worker.deliver(message)  # bound late: the worker needs the link, the link this callback

    link = MqttLink(
        settings.mqtt_url,
        client_id or settings.ingest_client_id or default_client_id(),
        subscriptions(share_group),
        deliver,
        receive_maximum=settings.ingest_receive_maximum,
        max_unsent_answers=settings.ingest_max_unsent_answers,
    )
    worker = IngestWorker(pool, link, config, after_batch=collect_between_batches())

    stop_on_signals(worker.request_stop, "finishing the batch in hand, then stopping")
    freeze_startup_heap()

    link.start()
    reporter = threading.Thread(target=_report, args=(worker,), daemon=True)
    reporter.start()
    log.info("ingest worker running")
    try:
        worker.run()
    finally:
        link.stop()
        pool.close()
        log.info("ingest worker stopped: %s", dict(worker.metrics))


def _report(worker: IngestWorker) -> None:
    while True:
        time.sleep(10)
        log.info("ingest: %s", dict(worker.metrics))
