"""The ingest hand-over: order, its bound, batches closed by size or time, and closing."""

from __future__ import annotations

import threading
import time

import pytest

from ingest.handover import Handed, Handover

# Generous: a test fails by waiting this long, not by a timing that a busy machine misses.
PATIENCE = 30.0


def test_items_come_out_in_order_at_most_a_batch_at_a_time() -> None:
    handover: Handover[int] = Handover(100)
    assert [handover.put(n) for n in range(10)] == [Handed.TAKEN] * 10
    assert len(handover) == 10
    assert handover.take(4, 0.0, 0.0) == [0, 1, 2, 3]
    assert handover.take(4, 0.0, 0.0) == [4, 5, 6, 7]
    assert handover.take(4, 0.0, 0.0) == [8, 9]  # what there is once the time is up
    assert handover.take(4, 0.0, 0.0) == []
    assert len(handover) == 0


def test_nothing_within_the_first_wait_is_an_empty_batch() -> None:
    handover: Handover[int] = Handover(10)
    began = time.monotonic()
    assert handover.take(5, PATIENCE, 0.05) == []
    assert time.monotonic() - began < PATIENCE  # it did not wait to gather


def take_while_putting(handover: Handover[int], most: int, items: int) -> list[list[int]]:
    """What a consumer waiting in `take(most, …)` got while `items` were put; fails the test
    if it waited out its gathering time (PATIENCE) instead of being woken."""
    taken: list[list[int]] = []
    consumer = threading.Thread(
        target=lambda: taken.append(handover.take(most, PATIENCE, PATIENCE))
    )
    consumer.start()
    began = time.monotonic()
    for n in range(items):
        handover.put(n)
    consumer.join(PATIENCE + 5)
    assert time.monotonic() - began < PATIENCE
    return taken


def test_a_whole_batch_is_taken_as_soon_as_it_is_there() -> None:
    handover: Handover[int] = Handover(1000)
    # Woken by the hundredth item, not by the end of its gathering time.
    assert take_while_putting(handover, 100, 150) == [list(range(100))]
    assert handover.take_all() == list(range(100, 150))


def test_a_batch_that_does_not_fill_closes_when_its_time_is_up() -> None:
    handover: Handover[int] = Handover(1000)
    for n in range(3):
        handover.put(n)
    began = time.monotonic()
    assert handover.take(100, 0.05, PATIENCE) == [0, 1, 2]
    assert 0.05 <= time.monotonic() - began < PATIENCE


def test_a_full_hand_over_makes_the_producer_wait_until_room_is_made() -> None:
    handover: Handover[int] = Handover(3)
    for n in range(3):
        assert handover.put(n) is Handed.TAKEN
    results: list[Handed] = []
    producer = threading.Thread(target=lambda: results.append(handover.put(3)))
    producer.start()
    producer.join(0.3)
    assert producer.is_alive()
    assert len(handover) == 3  # the bound holds
    assert handover.take(2, 0.0, 0.0) == [0, 1]
    producer.join(PATIENCE)
    assert results == [Handed.WAITED]
    assert handover.take_all() == [2, 3]


def test_closing_refuses_new_items_and_releases_a_waiting_producer() -> None:
    handover: Handover[int] = Handover(1)
    handover.put(0)
    results: list[Handed] = []
    producer = threading.Thread(target=lambda: results.append(handover.put(1)))
    producer.start()
    producer.join(0.3)
    assert producer.is_alive()
    handover.close()
    producer.join(PATIENCE)
    assert results == [Handed.REFUSED]
    assert handover.put(2) is Handed.REFUSED
    assert handover.take_all() == [0]  # what was taken before still comes out


def test_a_hand_over_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError):
        Handover(0)


def test_a_batch_larger_than_the_hand_over_holds_is_taken_once_it_is_full() -> None:
    handover: Handover[int] = Handover(10)
    assert take_while_putting(handover, 100, 10) == [list(range(10))]
