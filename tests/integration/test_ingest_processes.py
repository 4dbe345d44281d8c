"""`tracefin ingest --processes 2`: two supervised worker processes share the load, lose nothing
and store each event once, and stop cleanly with their parent."""

from __future__ import annotations

import ast
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.mqtt_link import end_session
from records.db import Conn
from tests.support.processes import WorkerProcess
from tracefin.processes.ingest import worker_client_ids
from tracefin.simulate import Publisher, register_sim_devices, signed_publications, sim_devices

pytestmark = pytest.mark.integration

STOPPED = "ingest worker stopped: "


def _counts(db: Conn, org: str) -> tuple[int, int]:
    """Rows stored for the org, and distinct events among them."""
    row = db.execute(
        "SELECT count(*), count(DISTINCT event_hash) FROM events e"
        " JOIN orgs o ON o.id = e.org_id WHERE o.slug = %s",
        (org,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_two_processes_share_the_load_and_lose_nothing(
    database_url: str, mqtt_url: str, db: Conn, tmp_path: Path
) -> None:
    total = 2_000
    org = f"procs-{secrets.token_hex(3)}"
    register_sim_devices(db, org, seed=org)
    devices = sim_devices(org, seed=org)
    start = datetime.now(UTC) - timedelta(hours=1)
    publications = list(signed_publications(devices, range(total // 7 + 1), start))[:total]
    base = f"test-ingest-procs-{secrets.token_hex(3)}"
    ingest = WorkerProcess(
        ["ingest", "--processes", "2", "--client-id", base],
        {
            "TRACEFIN_DATABASE_URL": database_url,
            "TRACEFIN_MQTT_URL": mqtt_url,
            "TRACEFIN_INGEST_BATCH_MAX_WAIT_MS": "20",
        },
        tmp_path,
        base,
    )
    ingest.start()
    try:
        # The children write to the parent's output: both say they are subscribed.
        ingest.wait_for_log("MQTT subscribed", timeout=60, count=2)
        publisher = Publisher(mqtt_url, f"procs-pub-{secrets.token_hex(3)}")
        try:
            for publication in publications:
                publisher.publish(publication)
            assert publisher.wait_acked(total, timeout=120), "broker did not take every message"
        finally:
            publisher.close()
        deadline = time.monotonic() + 120
        while _counts(db, org)[0] < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _counts(db, org) == (total, total), ingest.log_text()[-3000:]
        # SIGTERM to the parent stops both children, each after committing what it holds.
        assert ingest.terminate(timeout=60) == 0
    finally:
        if ingest.alive:
            ingest.kill()
        for client_id in worker_client_ids(base, 2):
            end_session(mqtt_url, client_id)
    stopped = [
        ast.literal_eval(line.split(STOPPED, 1)[1].strip())
        for line in ingest.log_text().splitlines()
        if STOPPED in line
    ]
    assert len(stopped) == 2, ingest.log_text()[-3000:]
    stored = [int(metrics.get("stored", 0)) for metrics in stopped]
    # Both members of the shared subscription took a share, and together every event.
    assert all(count > 0 for count in stored), stored
    assert sum(stored) == total


def test_worker_client_ids_keep_the_single_process_id_first() -> None:
    assert worker_client_ids("tracefin-ingest-a", 1) == ["tracefin-ingest-a"]
    assert worker_client_ids("tracefin-ingest-a", 3) == [
        "tracefin-ingest-a",
        "tracefin-ingest-a-2",
        "tracefin-ingest-a-3",
    ]
