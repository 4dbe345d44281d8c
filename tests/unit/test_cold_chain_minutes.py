"""The cold-chain rules judge a site's minutes (rules.minute_readings) as its every reading."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from finance.rules import (
    Minute,
    Policy,
    Reading,
    back_in_range_since,
    cold_chain_excursion,
    minute_readings,
)
from tests.support.examples import examples

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
LOW, HIGH = -25.0, -15.0


def minutes_of(readings: list[tuple[datetime, float]]) -> list[Minute]:
    """What migration 0035 computes: readings grouped by the minute they fall in."""
    by_minute: dict[datetime, list[tuple[datetime, float]]] = defaultdict(list)
    for time, value in readings:
        by_minute[time.replace(second=0, microsecond=0)].append((time, value))
    return [
        Minute(
            start,
            min(v for _, v in group),
            max(v for _, v in group),
            sum(v for _, v in group) / len(group),
            min(t for t, _ in group),
        )
        for start, group in sorted(by_minute.items())
    ]


def judged_by_minute(
    readings: list[tuple[datetime, float]], low: float | None, high: float | None, since: datetime
) -> list[Reading]:
    """What the cold-chain check reads: minutes, and the readings of the minutes that need them."""
    standing, mixed = minute_readings(minutes_of(readings), low, high, since)
    one_by_one = [
        (time, value)
        for time, value in readings
        if time.replace(second=0, microsecond=0) in mixed and time >= since
    ]
    return [*standing, *one_by_one]


def test_an_excursion_inside_one_minute_is_read_reading_by_reading() -> None:
    readings = [(T0 + timedelta(seconds=s), -5.0 if 10 <= s < 40 else -20.0) for s in range(60)]
    policy = Policy(breach_tolerance=timedelta(seconds=20))
    by_minute = judged_by_minute(readings, LOW, HIGH, T0)
    excursion = cold_chain_excursion(by_minute, LOW, HIGH, policy, T0 + timedelta(minutes=5))
    assert excursion is not None
    assert excursion.start == T0 + timedelta(seconds=10)
    assert excursion.end == T0 + timedelta(seconds=40)


def test_whole_minutes_stand_for_their_readings_by_their_first() -> None:
    readings = [(T0 + timedelta(minutes=m, seconds=s), -5.0) for m in range(3) for s in (7, 30)]
    standing, mixed = minute_readings(minutes_of(readings), LOW, HIGH, T0)
    assert mixed == []
    assert standing == [(T0 + timedelta(minutes=m, seconds=7), -5.0) for m in range(3)]


def test_a_minute_out_on_both_sides_is_read_reading_by_reading() -> None:
    """-30 and -5 in one minute: out below and above, and maybe in range between."""
    minute = Minute(T0, -30.0, -5.0, -17.5, T0)
    assert minute_readings([minute], LOW, HIGH, T0) == ([], [T0])


def test_a_minute_begun_before_since_is_read_reading_by_reading() -> None:
    minute = Minute(T0, -20.0, -20.0, -20.0, T0)
    assert minute_readings([minute], LOW, HIGH, T0 + timedelta(seconds=1)) == ([], [T0])


@settings(max_examples=examples(400))
@given(
    times=st.lists(st.integers(0, 30 * 60), min_size=0, max_size=60, unique=True),
    values=st.lists(st.sampled_from([-40.0, -25.0, -20.0, -15.0, -10.0, 5.0]), min_size=60),
    bounds=st.sampled_from([(LOW, HIGH), (None, HIGH), (LOW, None)]),
    since_s=st.integers(0, 10 * 60),
    tolerance_s=st.integers(0, 10 * 60),
)
def test_minutes_judge_as_every_reading_does(
    times: list[int],
    values: list[float],
    bounds: tuple[float | None, float | None],
    since_s: int,
    tolerance_s: int,
) -> None:
    low, high = bounds
    since = T0 + timedelta(seconds=since_s)
    readings = [(T0 + timedelta(seconds=s), values[i]) for i, s in enumerate(times)]
    every = [(time, value) for time, value in readings if time >= since]
    # What the database returns from `since`'s minute on.
    stored = [
        (time, value) for time, value in readings if time >= since.replace(second=0, microsecond=0)
    ]
    by_minute = judged_by_minute(stored, low, high, since)
    policy = Policy(breach_tolerance=timedelta(seconds=tolerance_s))
    now = T0 + timedelta(minutes=40)
    assert cold_chain_excursion(by_minute, low, high, policy, now) == cold_chain_excursion(
        every, low, high, policy, now
    )
    assert back_in_range_since(by_minute, low, high) == back_in_range_since(every, low, high)
