"""Composition root of the `tracefin capture-worker` process: settings -> capture-job worker."""

from __future__ import annotations

import logging
from datetime import timedelta

from ingest.capture_jobs import CaptureJobConfig, CaptureJobWorker
from tracefin.process import freeze_startup_heap, stop_on_signals
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def run_capture_worker(settings: Settings) -> None:
    """Work POST /epcis/capture's jobs until SIGTERM/SIGINT (the job in hand commits or rolls
    back, and is worked again if it rolled back)."""
    if settings.database_url is None:
        raise SystemExit("tracefin capture-worker needs TRACEFIN_DATABASE_URL")
    worker = CaptureJobWorker(
        settings.database_url,
        CaptureJobConfig(
            max_payload_bytes=settings.ingest_max_payload_bytes,
            max_future_skew=settings.max_future_skew,
            retention=timedelta(days=settings.capture_job_retention_days),
        ),
    )
    stop_on_signals(worker.request_stop, "stopping after the job in hand")
    freeze_startup_heap()
    log.info("capture worker running")
    worker.run()
    log.info("capture worker stopped after %d jobs", worker.finished)
