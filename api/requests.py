"""Four-eyes requests (issue 15 item 5): a financier's pending gated operations, approved or
rejected by a checker of the same org who is not the maker (finance/four_eyes.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import Checker, Config, DbConn, FinanceJournal, Financier, chain_now
from api.errors import AUTH_PROBLEMS, COMMON_PROBLEMS, problem_response
from finance import four_eyes
from finance.store.requests import FourEyesRequest
from ledger.chain import Chain

router = APIRouter(responses={**COMMON_PROBLEMS, **AUTH_PROBLEMS})

# The statuses four eyes' own refusals answer with; the operations' refusals are finance's.
_REFUSED_STATUS = {
    "forbidden_user_role": 403,
    "same_user": 403,
    "unknown_request": 404,
    "request_not_pending": 409,
}

State = Literal["pending", "approved", "rejected", "failed"]


class RequestPublic(BaseModel):
    """A four-eyes request: a gated operation a maker asked for, and its checker's decision."""

    id: int
    kind: str
    params: dict[str, Any]
    maker: str  # org/user
    state: State
    checker: str | None
    error_code: str | None
    created_at: datetime
    decided_at: datetime | None


class PendingPublic(BaseModel):
    """The answer (202) to a gated operation while four eyes is on: it waits for a checker."""

    request: int
    state: Literal["pending"]


class DecidedPublic(BaseModel):
    """An approved request and what its operation answered (the route's own answer)."""

    request: RequestPublic
    result: Any


# For the gated routes' OpenAPI: they may answer 202 with the stored request.
PENDING_RESPONSE: dict[int | str, dict[str, Any]] = {
    202: {"description": "Four eyes is on: stored, waiting for a checker", "model": PendingPublic}
}


def _public(request: FourEyesRequest) -> RequestPublic:
    return RequestPublic.model_validate(request, from_attributes=True)


@router.get(
    "/v1/requests",
    response_model=list[RequestPublic],
    summary="Your organisation's four-eyes requests, newest first",
)
def requests(
    conn: DbConn, person: Financier, state: Annotated[State | None, Query()] = None
) -> list[RequestPublic]:
    return [_public(request) for request in four_eyes.requests(conn, person, state)]


@router.post(
    "/v1/requests/{request_id}/approve",
    response_model=DecidedPublic,
    summary="Approve another user's request (checkers): the operation runs now, checked again",
)
def approve(
    conn: DbConn, journal: FinanceJournal, config: Config, person: Checker, request_id: int
) -> DecidedPublic:
    def chain() -> Chain:  # only a release needs one
        return chain_now(conn, config)

    approved = four_eyes.approve(conn, journal, person, request_id, chain)
    return DecidedPublic(
        request=_public(approved.request), result=jsonable_encoder(approved.result)
    )


@router.post(
    "/v1/requests/{request_id}/reject",
    response_model=RequestPublic,
    summary="Reject another user's request (checkers): nothing of it is done",
)
def reject(
    conn: DbConn, journal: FinanceJournal, person: Checker, request_id: int
) -> RequestPublic:
    return _public(four_eyes.reject(conn, journal, person, request_id))


def install(app: FastAPI) -> None:
    """Four eyes' answers: 202 for a stored request, problems for its refusals."""

    @app.exception_handler(four_eyes.Pending)
    async def on_pending(request: Request, exc: four_eyes.Pending) -> JSONResponse:
        body = PendingPublic(request=exc.request.id, state="pending")
        return JSONResponse(body.model_dump(), status_code=202)

    @app.exception_handler(four_eyes.Refused)
    async def on_refused(request: Request, exc: four_eyes.Refused) -> JSONResponse:
        return problem_response(_REFUSED_STATUS[exc.code], exc.code, exc.detail, request.url.path)
