"""What every long-running tracefin process shares: stopping cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

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
