"""EPCIS 2.0 asynchronous capture: POST /epcis/capture queues a job, GET shows its outcome.

The capture worker (`tracefin capture-worker`, ingest/capture_jobs.py) works the jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.config import ApiConfig
from api.deps import AnyOrg, Config, DbConn, Enterprise
from api.enterprise import (
    EPCIS_HEADERS,
    MAX_KEPT_PAYLOAD,
    VERSION_HEADERS,
    api_user_of,
    error_behaviour_of,
    next_page_link,
)
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem, problem_response
from api.middleware import MAX_BODY_BYTES
from epcis.capture import WHOLE_PAYLOAD, RefusedItem, count_events
from epcis.rejects import EventRejected, RejectCode
from ingest.capture import CAPTURE_JOBS_TOPIC, CaptureBatch, Origin
from records import capture_job_store
from records.capture_job_store import CaptureJob
from records.db import Conn

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})

# GET /epcis/capture: jobs per page unless perPage says otherwise, and at most.
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 1000
_LIMIT_EXCEEDED = "epcisException:CaptureLimitExceededException"
_VALIDATION = "epcisException:ValidationException"


class CaptureJobEvent(BaseModel):
    """One event of a job's document that was captured."""

    index: int = Field(description="its place in the document, from 0")
    eventID: str = Field(description="its event hash ID (ni:///sha-256;…?ver=CBV2.0)")  # noqa: N815
    status: Literal["accepted", "duplicate"] = Field(
        description="accepted: stored by this job; duplicate: stored before (or earlier in"
        " the document), not again"
    )


class CaptureJobError(BaseModel):
    """An RFC 9457 problem: one refused event (`index`) or the job as a whole (`index` -1)."""

    type: str
    title: str
    status: int
    code: str = Field(description="the stable reject code (docs/devices.md), or capture_job_failed")
    detail: str
    index: int


class CaptureJobPublic(BaseModel):
    """A capture job (GS1 EPCIS 2.0 REST binding, CaptureJob) with each captured event."""

    captureID: str  # noqa: N815
    createdAt: datetime  # noqa: N815
    finishedAt: datetime | None = None  # noqa: N815
    running: bool
    success: bool
    captureErrorBehaviour: Literal["rollback", "proceed"]  # noqa: N815
    errors: list[CaptureJobError]
    events: list[CaptureJobEvent]


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_document(job: CaptureJob) -> dict[str, Any]:
    """The job as the standard shows it: still `running` until the worker finished it, and
    `success` until an error is known."""
    document: dict[str, Any] = {
        "captureID": str(job.capture_id),
        "createdAt": _utc(job.created_at),
        "running": job.finished_at is None,
        "success": job.success is not False,
        "captureErrorBehaviour": job.error_behaviour,
        "errors": job.errors,
        "events": job.results,
    }
    if job.finished_at is not None:
        document["finishedAt"] = _utc(job.finished_at)
    return document


def limit_headers(config: ApiConfig) -> dict[str, str]:
    """The capture limits, announced as the standard names them."""
    return {
        "GS1-EPCIS-Capture-Limit": str(config.capture_max_events),
        # The server reads no larger body, whatever the capture setting says.
        "GS1-EPCIS-Capture-File-Size-Limit": str(min(config.max_payload_bytes, MAX_BODY_BYTES)),
    }


def _refused(
    status: int, code: str, detail: str, path: str, headers: dict[str, str], type_: str
) -> JSONResponse:
    response = problem_response(status, code, detail, path, type=type_)
    response.headers.update(headers)
    return response


_CAPTURE_LIMITS_HEADERS = {
    "GS1-EPCIS-Capture-Limit": {
        "description": "the most events one capture may carry",
        "schema": {"type": "integer"},
    },
    "GS1-EPCIS-Capture-File-Size-Limit": {
        "description": "the most bytes one capture may have",
        "schema": {"type": "integer"},
    },
}


@router.post(
    "/epcis/capture",
    status_code=202,
    summary="EPCIS 2.0 REST binding: capture a document asynchronously, as a capture job",
    response_class=Response,
    responses={
        202: {
            "description": "queued: the job is at Location; its events are validated and"
            " stored by the capture worker",
            "headers": {
                "Location": {"description": "/epcis/capture/{captureID}", "schema": {}},
                **_CAPTURE_LIMITS_HEADERS,
            },
        },
        413: {
            "description": "over a capture limit (the headers say which)",
            "headers": _CAPTURE_LIMITS_HEADERS,
        },
    },
    openapi_extra={
        "parameters": [
            {
                "name": "GS1-Capture-Error-Behaviour",
                "in": "header",
                "required": False,
                "description": "rollback (the default): store nothing of a document with a"
                " refused event; proceed: store the good ones",
                "schema": {"type": "string", "enum": ["rollback", "proceed"]},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "description": "an EPCISDocument or EPCISQueryDocument (or, as at"
                        " /v1/capture, an event or an array of events or envelopes)"
                    }
                }
            },
        },
    },
)
async def capture(request: Request, conn: DbConn, config: Config, org: Enterprise) -> Response:
    """202 once the document is kept as a job; 400 only for a body that cannot be read as a
    capture at all (not JSON, no events); 413 over the limits. Invalid events do not refuse
    the document: the job's result names them."""
    limits = limit_headers(config)
    path = request.url.path
    behaviour = error_behaviour_of(request, "rollback")
    if behaviour is None:
        return _refused(
            400,
            "invalid_capture_error_behaviour",
            "GS1-Capture-Error-Behaviour is rollback or proceed",
            path,
            limits,
            _VALIDATION,
        )
    payload = await request.body()
    received_at = datetime.now(UTC)
    api_user = api_user_of(request)
    try:
        events = count_events(payload, max_payload_bytes=config.max_payload_bytes)
    except EventRejected as exc:
        # Kept as a dead letter, as every refused payload is, for the sender to inspect.
        origin = Origin(
            CAPTURE_JOBS_TOPIC,
            received_at,
            payload[:MAX_KEPT_PAYLOAD],
            channel="http",
            api_user=api_user,
        )
        batch = CaptureBatch()
        batch.refuse(origin, RefusedItem(WHOLE_PAYLOAD, exc.code, exc.detail))
        with conn.transaction():
            batch.store(conn)
        if exc.code is RejectCode.PAYLOAD_TOO_LARGE:
            return _refused(413, exc.code.value, exc.detail, path, limits, _LIMIT_EXCEEDED)
        return _refused(400, exc.code.value, exc.detail, path, limits, _VALIDATION)
    if events > config.capture_max_events:
        return _refused(
            413,
            "capture_limit_exceeded",
            f"the document holds {events} events; the limit is {config.capture_max_events}",
            path,
            limits,
            _LIMIT_EXCEEDED,
        )
    with conn.transaction():  # the workers are woken on commit
        job = capture_job_store.queue_job(
            conn,
            org.id,
            api_user,
            behaviour,
            payload,
            received_at,
        )
    return Response(
        status_code=202,
        headers={
            "Location": f"/epcis/capture/{job.capture_id}",
            **EPCIS_HEADERS,
            **limits,
        },
    )


@router.get(
    "/epcis/capture",
    response_model=list[CaptureJobPublic],
    summary="EPCIS 2.0 REST binding: your capture jobs, newest first, paged",
    responses={
        200: {"headers": {"Link": {"description": "rel=next: the next page", "schema": {}}}}
    },
)
def capture_jobs(
    request: Request,
    conn: DbConn,
    org: Enterprise,
    per_page: Annotated[str | None, Query(alias="perPage")] = None,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken")] = None,
) -> JSONResponse:
    limit = min(positive_parameter(per_page, "perPage") or DEFAULT_PER_PAGE, MAX_PER_PAGE)
    before = positive_parameter(next_page_token, "nextPageToken")
    # One more than asked: whether a next page exists, without counting.
    jobs = capture_job_store.own_jobs(conn, org.id, before, limit + 1)
    headers = dict(EPCIS_HEADERS)
    if len(jobs) > limit:
        jobs = jobs[:limit]
        headers["Link"] = next_page_link(request, jobs[-1].id)
    return JSONResponse([job_document(job) for job in jobs], headers=headers)


def positive_parameter(raw: str | None, name: str) -> int | None:
    """A query parameter's positive integer (None if absent); else a 400 naming it."""
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1 or len(raw) > 18:
        raise Problem(
            400,
            "query_parameter",
            f"{name} must be a positive integer",
            type="epcisException:QueryParameterException",
            parameter=name,
        )
    return int(raw)


@router.get(
    "/epcis/capture/{capture_id}",
    response_model=CaptureJobPublic,
    summary="EPCIS 2.0 REST binding: one of your capture jobs, with each event's outcome",
)
def capture_job(conn: DbConn, org: Enterprise, capture_id: str) -> JSONResponse:
    """Another organisation's job is answered as an unknown one: 404."""
    job = _own_job(conn, org.id, capture_id)
    return JSONResponse(job_document(job), headers=EPCIS_HEADERS)


def _own_job(conn: Conn, org_id: int, capture_id: str) -> CaptureJob:
    try:
        wanted = UUID(capture_id)
    except ValueError:
        wanted = None
    job = capture_job_store.own_job(conn, org_id, wanted) if wanted is not None else None
    if job is None:
        raise Problem(404, "unknown_capture_job", "no capture job of yours has that id")
    return job


@router.options(
    "/epcis/capture",
    status_code=204,
    responses={
        204: {
            "description": "the versions, the capture limits and the error behaviours",
            "headers": _CAPTURE_LIMITS_HEADERS,
        }
    },
    summary="EPCIS 2.0 REST binding: what the capture interface accepts",
)
def capture_options(config: Config, org: AnyOrg) -> Response:
    return Response(
        status_code=204,
        headers={
            **VERSION_HEADERS,
            **limit_headers(config),
            # Both behaviours are supported (the standard's way of saying so).
            "GS1-Capture-Error-Behaviour": "all",
            "Allow": "OPTIONS, POST, GET",
        },
    )


@router.options(
    "/epcis/capture/{capture_id}",
    status_code=204,
    responses={204: {"description": "the versions the capture job is answered in"}},
    summary="EPCIS 2.0 REST binding: the versions of one of your capture jobs",
)
def capture_job_options(conn: DbConn, org: AnyOrg, capture_id: str) -> Response:
    _own_job(conn, org.id, capture_id)
    return Response(status_code=204, headers={**VERSION_HEADERS, "Allow": "OPTIONS, GET"})
