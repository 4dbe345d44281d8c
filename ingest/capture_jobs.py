"""The capture-job worker: works the documents POST /epcis/capture queued, one job at a time.

A job is claimed with FOR NO KEY UPDATE SKIP LOCKED (so several workers share the queue), its
events go through the one capture pipeline (ingest.capture, as MQTT and /v1/capture), and its
events are stored and the job marked finished in the transaction that claimed it: a worker
killed mid-job leaves the job to be worked again, never half stored. Each attempt is recorded
beforehand on a connection of its own, so a job that kills its worker is given up after a few.
A job that makes the code raise is marked failed with a machine-readable error, and the worker
goes on with the next.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from epcis.capture import WHOLE_PAYLOAD, DeviceKey, RefusedItem
from ingest.capture import CAPTURE_JOBS_TOPIC, HTTP_DEVICE, CaptureBatch, Origin
from records import capture_job_store
from records.capture_job_store import QueuedJob
from records.db import Conn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureJobConfig:
    max_payload_bytes: int
    max_future_skew: timedelta
    # A job queued while the worker waits wakes it (LISTEN); this poll is the fallback, and
    # how soon a job held by a dead worker's lingering transaction is picked up again.
    poll_interval: timedelta = timedelta(seconds=1)
    # Attempts at one job at most: one that killed its worker this often is given up.
    max_attempts: int = 3
    # How long a finished job (its document, results and errors) is kept, then deleted; how
    # often the worker looks for such jobs, and how many it deletes per transaction.
    retention: timedelta = timedelta(days=30)
    expiry_interval: timedelta = timedelta(minutes=10)
    expiry_batch: int = 1000


def problem(code: str, detail: str, index: int, *, status: int = 400) -> dict[str, Any]:
    """A job's error: an RFC 9457 problem of the EPCIS exception type, with the stable `code`
    and the event's `index` in the document (-1: the document, or the job, as a whole)."""
    failed = status >= 500
    return {
        "type": "epcisException:ImplementationException"
        if failed
        else "epcisException:ValidationException",
        "title": "Capture job failed" if failed else "Event refused",
        "status": status,
        "code": code,
        "detail": detail,
        "index": index,
    }


def _refusal(refused: RefusedItem) -> dict[str, Any]:
    return problem(refused.code.value, refused.detail, refused.index)


_FAILED = problem(
    "capture_job_failed",
    "the job could not be worked; nothing of it was stored",
    WHOLE_PAYLOAD,
    status=500,
)
_ABANDONED = problem(
    "capture_job_abandoned",
    "the job stopped its worker every time it was tried; nothing of it was stored",
    WHOLE_PAYLOAD,
    status=500,
)


@dataclass(frozen=True)
class Outcome:
    success: bool
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]


def capture_job(conn: Conn, job: QueuedJob, config: CaptureJobConfig) -> Outcome:
    """Capture a job's document in the caller's transaction: store what its error behaviour
    allows (rollback: nothing of a document with a refused event) and keep the refusals as
    dead letters, as every capture does."""
    # Received when queued: the event-time checks judge the document as of its arrival, so
    # working it again later gives the same answer.
    origin = Origin(
        CAPTURE_JOBS_TOPIC, job.created_at, job.payload, channel="http", api_user=job.api_user
    )
    device = DeviceKey(job.org_id, job.org_slug, HTTP_DEVICE, None)
    batch = CaptureBatch()
    result = batch.capture(
        origin,
        device,
        max_payload_bytes=config.max_payload_bytes,
        max_future_skew=config.max_future_skew,
    )
    stored = batch.store_by(conn, job.error_behaviour, result.refused)
    errors = [_refusal(refused) for refused in stored.refused]
    if stored.rolled_back:
        return Outcome(False, [], errors)
    results = [
        {"index": answer.index, "eventID": answer.hash_id, "status": answer.status}
        for answer in batch.answers(stored.new)
    ]
    return Outcome(not errors, results, errors)


class CaptureJobWorker:
    """Works queued capture jobs until asked to stop."""

    def __init__(self, database_url: str, config: CaptureJobConfig) -> None:
        self._database_url = database_url
        self._config = config
        self._stop = threading.Event()
        self.finished = 0
        self.expired = 0
        self._next_expiry = 0.0  # time.monotonic() of the next look for expired jobs

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        with (
            psycopg.connect(self._database_url, autocommit=True) as listener,
            psycopg.connect(self._database_url, autocommit=True) as conn,
            psycopg.connect(self._database_url, autocommit=True) as side,
        ):
            capture_job_store.listen_for_jobs(listener)
            while not self._stop.is_set():
                while not self._stop.is_set() and self.work_next(conn, side):
                    pass
                if time.monotonic() >= self._next_expiry:
                    self.delete_expired(conn)
                    self._next_expiry = (
                        time.monotonic() + self._config.expiry_interval.total_seconds()
                    )
                # Notices that came while working are queued: one wakes us at once.
                for _ in listener.notifies(
                    timeout=self._config.poll_interval.total_seconds(), stop_after=1
                ):
                    pass

    def delete_expired(self, conn: Conn) -> int:
        """Delete the jobs finished longer ago than the retention, a batch per transaction (so
        a long backlog holds no lock for long); how many went."""
        before = datetime.now(UTC) - self._config.retention
        deleted = 0
        while not self._stop.is_set():
            batch = capture_job_store.delete_finished(conn, before, self._config.expiry_batch)
            deleted += batch
            if batch < self._config.expiry_batch:
                break
        if deleted:
            log.info("deleted %d capture jobs finished before %s", deleted, before.isoformat())
        self.expired += deleted
        return deleted

    def work_next(self, conn: Conn, side: Conn) -> bool:
        """Work the oldest waiting job on `conn`, its attempt recorded on `side` (another
        autocommit connection); False when no job waits."""
        job: QueuedJob | None = None
        try:
            with conn.transaction():
                job = capture_job_store.claim_next(conn)
                if job is None:
                    return False
                log.info("capture job %s claimed (attempt %d)", job.capture_id, job.attempts + 1)
                if job.attempts >= self._config.max_attempts:
                    outcome = Outcome(False, [], [_ABANDONED])
                else:
                    capture_job_store.record_attempt(side, job.id, datetime.now(UTC))
                    outcome = capture_job(conn, job, self._config)
                capture_job_store.finish_job(
                    conn,
                    job.id,
                    success=outcome.success,
                    results=outcome.results,
                    errors=outcome.errors,
                    finished_at=datetime.now(UTC),
                )
        except pg_errors.TransactionRollback as exc:
            # A deadlock or serialization failure with another writer: the job is as it was;
            # it is claimed again (and counted) on the next round.
            log.warning("capture job rolled back (%s); it will be tried again", exc)
            return True
        except psycopg.OperationalError:
            raise  # the database is gone: nothing can be recorded; the supervisor restarts us
        except Exception:
            if job is None:
                raise  # no job in hand: the claim itself failed
            # A poison job: set it aside, failed, so it cannot stop the jobs behind it.
            log.exception("capture job %s failed; marked failed", job.capture_id)
            with conn.transaction():
                capture_job_store.finish_job(
                    conn,
                    job.id,
                    success=False,
                    results=[],
                    errors=[_FAILED],
                    finished_at=datetime.now(UTC),
                )
        log.info("capture job %s finished", job.capture_id)
        self.finished += 1
        return True
