"""The bounded hand-over of delivered messages from the MQTT network thread to the batch thread.

`queue.Queue` woke the batch thread for every message while it gathered a batch: each `put`
notified the waiting `get`, which took the GIL, appended one message and waited again. A
profile of one ingest worker put 4.5% of its CPU in `Queue.put` alone. Here the batch thread
is woken when what it waits for is there (a first message, then a whole batch) or its time is
up, and the network thread when room was made for it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handed(enum.Enum):
    TAKEN = "taken"
    WAITED = "waited"  # taken once room was made: the hand-over was full when it came
    REFUSED = "refused"  # closed: left to the broker, which redelivers it


class Handover(Generic[T]):
    """First in, first out; at most `capacity` items wait; one producer and one consumer."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a hand-over holds at least one item")
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)
        self._emptied = threading.Condition(self._lock)
        # How many items the waiting consumer needs before it is worth waking (0: not waiting).
        self._wanted = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> Handed:
        """Add `item`, waiting while the hand-over is full; REFUSED once it is closed."""
        waited = False
        with self._lock:
            while len(self._items) >= self._capacity:
                if self._closed:
                    return Handed.REFUSED
                waited = True
                self._emptied.wait(0.2)
            if self._closed:
                return Handed.REFUSED
            self._items.append(item)
            if self._wanted and len(self._items) >= self._wanted:
                self._wanted = 0
                self._filled.notify()
        return Handed.WAITED if waited else Handed.TAKEN

    def take(self, most: int, gather_for: float, first_within: float) -> list[T]:
        """Up to `most` items, oldest first: [] if none came within `first_within` seconds;
        else once `most` are there or `gather_for` seconds after the first was taken up."""
        with self._lock:
            if not self._items:
                self._wait_for(1, first_within)
                if not self._items:
                    return []
            deadline = time.monotonic() + gather_for
            # A batch larger than the hand-over holds is whole once it is full.
            whole = min(most, self._capacity)
            while len(self._items) < whole:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wait_for(whole, remaining)
            taken = [self._items.popleft() for _ in range(min(most, len(self._items)))]
            self._emptied.notify()
        return taken

    def take_all(self) -> list[T]:
        """Everything waiting, at once."""
        with self._lock:
            taken = list(self._items)
            self._items.clear()
            self._emptied.notify()
        return taken

    def close(self) -> None:
        """Refuse every item from now on; a producer waiting for room gives up within 0.2 s.

        It takes no lock, so a signal handler may call it: the handler may have interrupted
        the consumer while it held the hand-over's lock, and would wait on its own thread for
        good. An item is refused or taken whole: `put` checks and appends under the lock, so
        a `take_all` after `close` gets every item taken.
        """
        self._closed = True

    def _wait_for(self, count: int, timeout: float) -> None:
        self._wanted = count
        try:
            self._filled.wait(timeout)
        finally:
            self._wanted = 0
