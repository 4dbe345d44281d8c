"""Composition root of the `tracefin ingest` process: settings -> pool, MQTT link, worker."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

from ingest.mqtt_link import Inbound, MqttLink
from ingest.topics import subscriptions
from ingest.worker import IngestWorker, WorkerConfig
from records.db import open_pool
from tracefin.process import stop_on_signals
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def default_client_id() -> str:
    # Stable across restarts so the broker resumes the persistent session and redelivers.
    return f"tracefin-ingest-{socket.gethostname()}"


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
    worker = IngestWorker(pool, link, config)

    stop_on_signals(worker.request_stop, "finishing the batch in hand, then stopping")
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
