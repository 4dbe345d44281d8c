"""What every long-running tracefin process shares: stopping cleanly on SIGTERM and SIGINT, and a
collector that does not walk the start-up heap (nor, in the batch workers, each batch)."""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable
from types import FrameType


def stop_on_signals(request_stop: Callable[[], None], what_happens: str) -> None:
    """On SIGTERM or SIGINT, log `what_happens` and ask the worker to stop (no hard exit)."""
    log = logging.getLogger("tracefin.process")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: %s", signum, what_happens)
        request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, models, routes, schemas) out of the collector's
    generations: they live as long as the process, yet each full collection would walk all of
    them (about 200 000 in the API) in the middle of some request; measured, those pauses were
    the API's p99."""
    gc.collect()
    gc.freeze()


# The collector's thresholds for a worker that holds a batch of thousands of short-lived objects.
BATCH_WORKER_GC_THRESHOLDS = (50_000, 20, 100)


def collect_for_batches() -> None:
    """Run the cyclic collector less often, for a worker that builds a batch's objects at a time
    (ingest, finance): with the default thresholds (700, 10, 10) it walks each batch over and
    over. Measured in one ingest worker over 100 000 events, the collections took 3.3 s of its
    50.4 CPU s by default and 1.0 s with these; finance's profile showed a third of its time.
    Nothing relies on prompt cycle collection (reference counting frees the rest), and memory
    stays bounded by the batch size."""
    gc.set_threshold(*BATCH_WORKER_GC_THRESHOLDS)


# How many batches `collect_between_batches` lets pass between two full collections.
FULL_COLLECTION_EVERY = 100
# Allocations (less frees) after which the collector still runs by itself between two batches,
# for a worker that makes no batches while it retries an unreachable database or broker. The
# events of a default batch (2 000) hold about 58 000 when captured (measured with
# gc.get_count), so a batch of that size is not walked in its middle.
BACKSTOP_ALLOCATIONS = 250_000


def collect_between_batches(
    full_every: int = FULL_COLLECTION_EVERY, backstop: int = BACKSTOP_ALLOCATIONS
) -> Callable[[], None]:
    """For a worker that can say when a batch is done (ingest): the collector runs then, not
    by allocation counts. Returns what to call after each batch.

    With `collect_for_batches`' thresholds the collections ran in the middle of batches,
    walking their live objects: measured by `gc.callbacks` in an ingest worker over 100 000
    events, 0.43 CPU s in 49 collections, against 0.05 s in 51 this way. After a batch its
    objects are freed (reference counting) and the youngest generation holds what the batch
    left in cycles, which a collection of it frees; every `full_every` batches a full one
    catches cycles that outlived a batch. Memory stays bounded by the batch, as before; past
    `backstop` allocations without a batch the collector runs by itself.
    """
    gc.set_threshold(backstop, *gc.get_threshold()[1:])
    batches = 0

    def after_batch() -> None:
        nonlocal batches
        batches += 1
        gc.collect(2 if batches % full_every == 0 else 0)

    return after_batch
