"""The ingest worker's hand-over: bounded, oldest first, a batch per take, and each side woken
when what it waits for is there."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from ingest.mqtt_link import Inbound
from ingest.worker import Inbox

# Long enough that a side left unwoken shows as a failed join, not as a slow test.
NEVER = 60.0


def message(number: int) -> Inbound:
    return Inbound(
        topic="tf/org/dev/events",
        payload=str(number).encode(),
        mid=number,
        qos=1,
        generation=1,
        received_at=datetime.now(UTC),
    )


def numbers(taken: list[Inbound]) -> list[int]:
    return [item.mid for item in taken]


T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> tuple[threading.Thread, list[T]]:
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    return thread, result


def until_waiting_for(inbox: Inbox, count: int) -> None:
    """Until the taker waits for `count` messages (so what comes next must wake it)."""
    deadline = time.monotonic() + NEVER / 2
    while inbox._wanted != count:
        assert time.monotonic() < deadline, "the taker never waited"
        time.sleep(0.001)


def test_a_take_is_oldest_first_and_at_most_a_batch() -> None:
    inbox = Inbox(limit=10)
    for number in range(7):
        assert inbox.put(message(number), timeout=0)
    assert numbers(inbox.take(most=3, first_wait=0, fill_wait=0)) == [0, 1, 2]
    assert len(inbox) == 4
    assert numbers(inbox.take(most=10, first_wait=0, fill_wait=0.01)) == [3, 4, 5, 6]
    assert inbox.take(most=10, first_wait=0.01, fill_wait=0) == []


def test_a_full_inbox_refuses_after_the_timeout_and_keeps_what_it_holds() -> None:
    inbox = Inbox(limit=2)
    assert inbox.put(message(0), timeout=0)
    assert inbox.put(message(1), timeout=0)
    assert not inbox.put(message(2), timeout=0.01)
    assert numbers(inbox.take_all()) == [0, 1]
    assert inbox.take_all() == []


def test_a_waiting_producer_is_woken_when_a_batch_is_taken() -> None:
    inbox = Inbox(limit=2)
    inbox.put(message(0), timeout=0)
    inbox.put(message(1), timeout=0)
    producer, put = in_thread(lambda: inbox.put(message(2), timeout=NEVER))
    deadline = time.monotonic() + NEVER / 2
    while not inbox._room._waiters:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the producer never waited"
        time.sleep(0.001)
    assert numbers(inbox.take(most=1, first_wait=0, fill_wait=0)) == [0]
    producer.join(NEVER / 2)
    assert put == [True]
    assert numbers(inbox.take_all()) == [1, 2]


def test_a_waiting_taker_is_woken_by_its_first_message_and_by_a_full_batch() -> None:
    inbox = Inbox(limit=10)
    # Waiting for a first message: the first put wakes it, and it fills no longer than asked.
    taker, taken = in_thread(lambda: inbox.take(most=5, first_wait=NEVER, fill_wait=0))
    until_waiting_for(inbox, 1)
    inbox.put(message(0), timeout=0)
    taker.join(NEVER / 2)
    assert [numbers(batch) for batch in taken] == [[0]]
    # Filling a batch: it returns once `most` are there, not at the end of `fill_wait`.
    inbox.put(message(1), timeout=0)
    taker, taken = in_thread(lambda: inbox.take(most=3, first_wait=0, fill_wait=NEVER))
    until_waiting_for(inbox, 3)
    inbox.put(message(2), timeout=0)
    inbox.put(message(3), timeout=0)
    taker.join(NEVER / 2)
    assert [numbers(batch) for batch in taken] == [[1, 2, 3]]


def test_a_batch_larger_than_the_bound_is_taken_once_the_inbox_is_full() -> None:
    """The producer cannot put more than the bound, so waiting for more would always time out."""
    inbox = Inbox(limit=3)
    for number in range(3):
        inbox.put(message(number), timeout=0)
    taker, taken = in_thread(lambda: inbox.take(most=10, first_wait=0, fill_wait=NEVER))
    taker.join(NEVER / 2)
    assert [numbers(batch) for batch in taken] == [[0, 1, 2]]
