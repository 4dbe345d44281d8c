"""Composition root of the `tracefin finance` process: settings -> monitoring worker, signals."""

from __future__ import annotations

import gc
import logging

from finance.store.journal import Journal
from finance.worker import FinanceConfig, FinanceWorker
from tracefin.process import stop_on_signals
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def run_finance(settings: Settings) -> None:
    """Follow the event log until SIGTERM/SIGINT (the chunk in hand commits or rolls back)."""
    if settings.database_url is None:
        raise SystemExit("tracefin finance needs TRACEFIN_DATABASE_URL")
    journal = Journal(settings.journal_seal_key())
    worker = FinanceWorker(settings.database_url, FinanceConfig(), journal)
    # A chunk holds thousands of decoded event bodies; with the default thresholds the cyclic
    # collector walks them over and over (a third of the worker's time in a profile). Nothing
    # here relies on prompt cycle collection, and memory is bounded by the chunk size.
    gc.set_threshold(50_000, 20, 100)

    stop_on_signals(worker.request_stop, "stopping after the chunk in hand")
    log.info("finance worker running")
    worker.run()
    log.info("finance worker stopped after %d log positions", worker.applied)
