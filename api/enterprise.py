"""Enterprise routes: EPCIS capture over HTTP (same pipeline as MQTT) and the event query."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import AnyOrg, Enterprise
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, Problem
from api.schemas import CaptureItem, CaptureRefusal, CaptureResultPublic, EventsPage
from epcis.capture import WHOLE_PAYLOAD, DeviceKey, capture
from records import event_store
from records.event_query import EventQuery, query_events
from records.event_store import DeadLetter, EventToStore

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})
HTTP_DEVICE = "http-capture"
CAPTURE_TOPIC = "http:/v1/capture"


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
async def capture_events(request: Request, org: Enterprise) -> JSONResponse:
    settings = request.app.state.settings
    payload = await request.body()
    now = datetime.now(UTC)
    device = DeviceKey(org.id, org.slug, HTTP_DEVICE, None)  # the API key is the proof of origin
    result = capture(
        payload,
        device,
        now=now,
        max_payload_bytes=settings.ingest_max_payload_bytes,
        max_future_skew=settings.max_future_skew,
    )
    dead = [
        DeadLetter(now, CAPTURE_TOPIC, payload[:1_048_576], r.index, r.code.value, r.detail)
        for r in result.refused
    ]
    rows = [EventToStore(a, org.id, HTTP_DEVICE, CAPTURE_TOPIC, now) for a in result.accepted]
    with request.app.state.pool.connection() as conn, conn.transaction():
        new = event_store.insert_events(conn, rows)
        event_store.insert_dead_letters(conn, dead)
    whole = [r for r in result.refused if r.index == WHOLE_PAYLOAD]
    if whole:
        refused_status = 413 if whole[0].code.value == "payload_too_large" else 400
        raise Problem(refused_status, whole[0].code.value, whole[0].detail)
    accepted = []
    for item in result.accepted:
        outcome = "accepted" if item.digest in new else "duplicate"
        new.discard(item.digest)
        accepted.append(CaptureItem(index=item.index, event_hash=item.hash_id, status=outcome))
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
        "GS1-EPCIS-Capture-File-Size-Limit": str(settings.ingest_max_payload_bytes),
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


@router.get("/v1/events", response_model=EventsPage, summary="EPCIS query (a subset)")
def events(
    request: Request,
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
        with request.app.state.pool.connection() as conn:
            page = query_events(conn, query)
    except ValueError as exc:
        raise Problem(400, "invalid_identifier", str(exc)) from None
    return EventsPage(events=page.events, next_cursor=page.next_cursor)
