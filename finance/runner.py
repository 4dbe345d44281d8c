"""Composition root of the `tracefin finance` process: settings -> monitoring worker, signals."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from finance.worker import FinanceConfig, FinanceWorker
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def run_finance(settings: Settings) -> None:
    """Follow the event log until SIGTERM/SIGINT (the chunk in hand commits or rolls back)."""
    if settings.database_url is None:
        raise SystemExit("tracefin finance needs TRACEFIN_DATABASE_URL")
    worker = FinanceWorker(settings.database_url, FinanceConfig())

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the chunk in hand", signum)
        worker.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("finance worker running")
    worker.run()
    log.info("finance worker stopped after %d log positions", worker.applied)
