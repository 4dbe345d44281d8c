"""Composition root of the `tracefin anchor` process: settings -> anchor worker, signals."""

from __future__ import annotations

import logging
from datetime import timedelta

from ledger.anchoring import AnchorConfig, AnchorWorker
from tracefin.process import freeze_startup_heap, stop_on_signals
from tracefin.settings import Settings

log = logging.getLogger(__name__)


def run_anchor(settings: Settings) -> None:
    """Run one anchor process (leader or stand-by) until SIGTERM/SIGINT."""
    if settings.database_url is None or settings.chain_rpc_url is None:
        raise SystemExit("tracefin anchor needs TRACEFIN_DATABASE_URL and TRACEFIN_CHAIN_RPC_URL")
    worker = AnchorWorker(
        settings.database_url,
        settings.chain_rpc_url,
        settings.chain_key(),
        AnchorConfig(
            batch_size=settings.anchor_batch_size,
            batch_max_wait=timedelta(milliseconds=settings.anchor_batch_max_wait_ms),
            receipt_timeout=timedelta(seconds=settings.anchor_receipt_timeout_s),
        ),
    )

    stop_on_signals(worker.request_stop, "stopping after the batch in hand")
    freeze_startup_heap()

    log.info("anchor worker running (waiting for leadership)")
    worker.run()
    log.info("anchor worker stopped after %d batches", worker.batches_anchored)
