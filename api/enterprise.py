"""Enterprise routes: EPCIS capture over HTTP (same pipeline as MQTT) and the event query."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import AnyOrg, Config, DbConn, Enterprise
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem
from api.schemas import CaptureItem, CaptureRefusal, CaptureResultPublic, EventsPage
from epcis.capture import WHOLE_PAYLOAD, DeviceKey
from ingest.capture import CaptureBatch, Origin
from records.event_query import EventQuery, query_events

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})
HTTP_DEVICE = "http-capture"
CAPTURE_TOPIC = "http:/v1/capture"
# Dead letters keep at most this much of a refused payload (the Guard bounds bodies the same).
MAX_KEPT_PAYLOAD = 1_048_576


@router.post(
    "/v1/capture",
    response_model=CaptureResultPublic,
    summary="Capture EPCIS 2.0 events (an event, an array, or an EPCISDocument)",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "description": "an EPCIS 2.0 event, an array of events or envelopes,"
                        " or an EPCISDocument"
                    }
                }
            },
        }
    },
)
async def capture_events(
    request: Request, conn: DbConn, config: Config, org: Enterprise
) -> JSONResponse:
    payload = await request.body()
    origin = Origin(
        CAPTURE_TOPIC,
        datetime.now(UTC),
        payload[:MAX_KEPT_PAYLOAD],
        channel="http",
        api_user=_api_user(request),
    )
    device = DeviceKey(org.id, org.slug, HTTP_DEVICE, None)  # the API key is the proof of origin
    batch = CaptureBatch()
    result = batch.capture(
        origin,
        device,
        max_payload_bytes=config.max_payload_bytes,
        max_future_skew=config.max_future_skew,
    )
    with conn.transaction():
        new = batch.store(conn)
    whole = [r for r in result.refused if r.index == WHOLE_PAYLOAD]
    if whole:
        refused_status = 413 if whole[0].code.value == "payload_too_large" else 400
        raise Problem(refused_status, whole[0].code.value, whole[0].detail)
    accepted = [
        CaptureItem(index=answer.index, event_hash=answer.hash_id, status=answer.status)
        for answer in batch.answers(new)
    ]
    body = CaptureResultPublic(
        accepted=accepted,
        rejected=[
            CaptureRefusal(index=r.index, reason=r.code.value, detail=r.detail)
            for r in result.refused
        ],
    )
    # EPCIS capture limits, announced the EPCIS way.
    headers = {
        "GS1-EPCIS-Capture-Limit": "10000",
        "GS1-EPCIS-Capture-File-Size-Limit": str(config.max_payload_bytes),
    }
    if not accepted:
        # Nothing stored: a problem, with every event's reason as an extension member.
        raise Problem(
            422,
            "no_event_accepted",
            "no event of the payload was accepted",
            rejected=[r.model_dump() for r in body.rejected],
        )
    return JSONResponse(body.model_dump(mode="json"), status_code=201, headers=headers)


def _api_user(request: Request) -> str | None:
    """Which API key captured (its prefix, as `api_keys.key_prefix` keeps it): the attestation's
    user. The key itself was checked by the Enterprise dependency."""
    _, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip()[:8] or None  # registry_store.issue_api_key keeps 8 characters


@router.get("/v1/events", response_model=EventsPage, summary="EPCIS query (a subset)")
def events(
    conn: DbConn,
    org: AnyOrg,
    eq_biz_step: Annotated[str | None, Query(alias="EQ_bizStep", max_length=200)] = None,
    ge_event_time: Annotated[datetime | None, Query(alias="GE_eventTime")] = None,
    lt_event_time: Annotated[datetime | None, Query(alias="LT_eventTime")] = None,
    match_epc: Annotated[str | None, Query(alias="MATCH_epc", max_length=512)] = None,
    eq_biz_location: Annotated[str | None, Query(alias="EQ_bizLocation", max_length=512)] = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventsPage:
    """Enterprises see their own events, regulators everyone's; financiers have no access."""
    if org.role == "financier":
        raise Problem(403, "forbidden_role", "financiers read goods status, not raw events")
    query = EventQuery(
        eq_biz_step=eq_biz_step,
        ge_event_time=ge_event_time,
        lt_event_time=lt_event_time,
        match_epc=match_epc,
        eq_biz_location=eq_biz_location,
        org_id=None if org.role == "regulator" else org.id,
        after=cursor,
        limit=limit,
    )
    try:
        page = query_events(conn, query)
    except ValueError as exc:
        raise Problem(400, "invalid_identifier", str(exc)) from None
    return EventsPage(events=page.events, next_cursor=page.next_cursor)
