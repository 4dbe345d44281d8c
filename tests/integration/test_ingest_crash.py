"""Crash safety: SIGKILL mid-stream loses and doubles nothing; SIGTERM stops cleanly."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from records import registry_store
from records.db import Conn
from tests.support.processes import IngestProcess
from tracefin.simulate import Publisher, register_sim_devices, signed_publications, sim_devices

pytestmark = pytest.mark.integration


def _wait_for_rows(db: Conn, org: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = _count(db, org)
        if count >= expected:
            return count
        time.sleep(0.2)
    return count


def _count(db: Conn, org: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM events e JOIN orgs o ON o.id = e.org_id WHERE o.slug = %s", (org,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _stream(mqtt_url: str, db: Conn, messages: int) -> tuple[str, list]:
    org = f"crash-{secrets.token_hex(3)}"
    register_sim_devices(db, org, seed=org)
    devices = sim_devices(org, seed=org)
    products = range(0, messages // 7 + 1)
    start = datetime.now(UTC) - timedelta(hours=2)
    publications = list(signed_publications(devices, products, start))[:messages]
    assert len(publications) == messages
    return org, publications


@pytest.mark.slow
def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    start_ingest: Callable[..., IngestProcess], mqtt_url: str, db: Conn
) -> None:
    total = 20_000
    org, publications = _stream(mqtt_url, db, total)
    worker = start_ingest()
    publisher = Publisher(mqtt_url, f"crash-pub-{secrets.token_hex(3)}")
    try:
        kills = 0
        for sent, publication in enumerate(publications, start=1):
            publisher.publish(publication)
            if sent in (6_000, 13_000):
                # Let the worker get well into the stream, then kill it without warning.
                _wait_for_rows(db, org, sent // 3, timeout=60)
                worker.kill()
                kills += 1
                # Killed mid-stream: the stream is far from stored when the worker dies.
                assert _count(db, org) < total
                time.sleep(0.5)  # the broker queues for the dead session meanwhile
                worker.start()
        assert publisher.wait_acked(total, timeout=120), "broker did not take every message"
    finally:
        publisher.close()
    stored = _wait_for_rows(db, org, total, timeout=180)
    assert kills == 2
    assert stored == total, f"stored {stored} of {total}\n{worker.log_text()[-3000:]}"
    # Nothing more arrives later: every event is stored exactly once.
    time.sleep(1.0)
    assert _count(db, org) == total
    distinct = db.execute(
        "SELECT count(DISTINCT event_hash) FROM events e JOIN orgs o ON o.id = e.org_id"
        " WHERE o.slug = %s",
        (org,),
    ).fetchone()
    assert distinct == (total,)
    assert worker.starts == 3
    # Each restart resumed the persistent session, which is what redelivers unacked messages.
    assert worker.log_text().count("session present: True") == 2


def test_sigterm_commits_acks_and_exits_cleanly(
    start_ingest: Callable[..., IngestProcess], mqtt_url: str, db: Conn
) -> None:
    total = 3_000
    org, publications = _stream(mqtt_url, db, total)
    worker = start_ingest()
    publisher = Publisher(mqtt_url, f"term-pub-{secrets.token_hex(3)}")
    try:
        for sent, publication in enumerate(publications, start=1):
            publisher.publish(publication)
            if sent == 1_500:
                _wait_for_rows(db, org, 500, timeout=60)
                assert worker.terminate() == 0, worker.log_text()[-3000:]
                assert "ingest worker stopped" in worker.log_text()
                worker.start()
        assert publisher.wait_acked(total, timeout=120)
    finally:
        publisher.close()
    assert _wait_for_rows(db, org, total, timeout=120) == total
    assert registry_store.get_org(db, org) is not None
