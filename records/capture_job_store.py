"""SQL for EPCIS capture jobs: queue a document, claim it, finish it, read an org's own jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from records.db import Conn

# Migration 0038's trigger notifies this channel when a job is queued.
CAPTURE_JOBS_CHANNEL = "tracefin_capture_jobs"

# GS1-Capture-Error-Behaviour: all or nothing, or every good event (HTTP capture).
ErrorBehaviour = Literal["rollback", "proceed"]


@dataclass(frozen=True)
class CaptureJob:
    """A job as its owner sees it (GET /epcis/capture/{captureID})."""

    id: int
    capture_id: UUID
    error_behaviour: ErrorBehaviour
    created_at: datetime
    finished_at: datetime | None
    success: bool | None
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class QueuedJob:
    """A job as a worker works it: whose, how, and the document."""

    id: int
    capture_id: UUID
    org_id: int
    org_slug: str
    api_user: str | None
    error_behaviour: ErrorBehaviour
    payload: bytes
    created_at: datetime
    attempts: int


def queue_job(
    conn: Conn,
    org_id: int,
    api_user: str | None,
    error_behaviour: ErrorBehaviour,
    payload: bytes,
    created_at: datetime,
) -> CaptureJob:
    """Keep a document to capture; the workers are woken when the caller commits."""
    with conn.cursor(row_factory=class_row(CaptureJob)) as cursor:
        job = cursor.execute(
            "INSERT INTO capture_jobs (org_id, api_user, error_behaviour, payload, created_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id, capture_id, error_behaviour,"
            " created_at, finished_at, success, results, errors",
            (org_id, api_user, error_behaviour, payload, created_at),
        ).fetchone()
    assert job is not None
    return job


def own_job(conn: Conn, org_id: int, capture_id: UUID) -> CaptureJob | None:
    """The org's job of that id; None for an unknown id and for another org's job alike."""
    with conn.cursor(row_factory=class_row(CaptureJob)) as cursor:
        return cursor.execute(
            "SELECT id, capture_id, error_behaviour, created_at, finished_at, success, results,"
            " errors FROM capture_jobs WHERE capture_id = %s AND org_id = %s",
            (capture_id, org_id),
        ).fetchone()


def own_jobs(conn: Conn, org_id: int, before_id: int | None, limit: int) -> list[CaptureJob]:
    """The org's jobs, newest first, older than `before_id` (a page's last row) if given."""
    with conn.cursor(row_factory=class_row(CaptureJob)) as cursor:
        return cursor.execute(
            "SELECT id, capture_id, error_behaviour, created_at, finished_at, success, results,"
            " errors FROM capture_jobs WHERE org_id = %s AND (%s::bigint IS NULL OR id < %s)"
            " ORDER BY id DESC LIMIT %s",
            (org_id, before_id, before_id, limit),
        ).fetchall()


def claim_next(conn: Conn) -> QueuedJob | None:
    """The oldest waiting job no other worker holds, held until the caller's transaction ends
    (other workers skip it), with how often it was set about before.

    NO KEY UPDATE, not UPDATE: `record_attempt`'s row, written from another connection while
    the job is held, references the job, which takes a KEY SHARE lock that UPDATE would block.
    """
    with conn.cursor(row_factory=class_row(QueuedJob)) as cursor:
        return cursor.execute(
            "SELECT j.id, j.capture_id, j.org_id, o.slug AS org_slug, j.api_user,"
            " j.error_behaviour, j.payload, j.created_at,"
            " (SELECT count(*) FROM capture_job_attempts a WHERE a.job_id = j.id) AS attempts"
            " FROM capture_jobs j JOIN orgs o ON o.id = j.org_id"
            " WHERE j.finished_at IS NULL ORDER BY j.id LIMIT 1"
            " FOR NO KEY UPDATE OF j SKIP LOCKED"
        ).fetchone()


def record_attempt(conn: Conn, job_id: int, at: datetime) -> None:
    """That a worker sets about the job: on a connection of its own (autocommit), so it is
    kept even when the worker dies before the job's transaction ends."""
    conn.execute(
        "INSERT INTO capture_job_attempts (job_id, started_at) VALUES (%s, %s)", (job_id, at)
    )


def finish_job(
    conn: Conn,
    job_id: int,
    *,
    success: bool,
    results: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    finished_at: datetime,
) -> bool:
    """Record a job's outcome, once: False if it was finished already."""
    cursor = conn.execute(
        "UPDATE capture_jobs SET finished_at = %s, success = %s, results = %s, errors = %s"
        " WHERE id = %s AND finished_at IS NULL",
        (finished_at, success, Jsonb(results), Jsonb(errors), job_id),
    )
    return cursor.rowcount == 1


def delete_finished(conn: Conn, finished_before: datetime, limit: int) -> int:
    """Delete at most `limit` jobs finished before `finished_before`, with their attempts, in
    one transaction (the caller's, if open); how many went. Waiting jobs are never deleted."""
    with conn.transaction():
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM capture_jobs WHERE finished_at < %s ORDER BY finished_at"
                " LIMIT %s FOR UPDATE SKIP LOCKED",
                (finished_before, limit),
            )
        ]
        if ids:
            conn.execute("DELETE FROM capture_job_attempts WHERE job_id = ANY(%s)", (ids,))
            conn.execute("DELETE FROM capture_jobs WHERE id = ANY(%s)", (ids,))
    return len(ids)


def listen_for_jobs(conn: Conn) -> None:
    """Subscribe `conn` (autocommit) to queued-job notices; read them with conn.notifies()."""
    conn.execute(f"LISTEN {CAPTURE_JOBS_CHANNEL}")
