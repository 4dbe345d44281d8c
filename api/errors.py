"""RFC 9457 problem responses with stable codes; nothing else ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.errors import QueryCanceled
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from finance.errors import FinanceError, FinanceErrorCode

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "Request timeout",
    409: "Conflict",
    413: "Content too large",
    414: "URI too long",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


class ProblemBody(BaseModel):
    """RFC 9457 problem details; `code` is the stable, machine-readable part."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these problem statuses (application/problem+json)."""
    schema = {"$ref": "#/components/schemas/ProblemBody"}
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "model": ProblemBody,
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for status in statuses
    }


# Every route can answer these: bad input, oversize body, rate limit, our own failure.
COMMON_PROBLEMS = problems(400, 405, 413, 422, 429, 500)
AUTH_PROBLEMS = problems(401, 403, 404, 409, 503)


class Problem(Exception):
    """Raise from a route to answer with a problem object; `code` is the stable contract."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


# The one mapping of finance's refusals to HTTP. Input that cannot be understood is 422 on a
# write (its body or path was read and refused) and 400 on a read (the request names nothing).
_FINANCE_STATUS: dict[FinanceErrorCode, int] = {
    FinanceErrorCode.INVALID_INPUT: 422,
    FinanceErrorCode.INVALID_LOT: 422,
    FinanceErrorCode.INVALID_GTIN: 422,
    FinanceErrorCode.INVALID_IDENTIFIER: 422,
    FinanceErrorCode.INVALID_AMOUNT: 422,
    FinanceErrorCode.AMOUNT_OUT_OF_RANGE: 422,
    FinanceErrorCode.INVALID_DATE: 422,
    FinanceErrorCode.INVALID_TERMS: 422,
    FinanceErrorCode.UNKNOWN_ORG: 404,
    FinanceErrorCode.UNKNOWN_LOT: 404,
    FinanceErrorCode.UNKNOWN_PRODUCT: 404,
    FinanceErrorCode.UNKNOWN_LINE: 404,
    FinanceErrorCode.UNKNOWN_WAREHOUSE: 404,
    FinanceErrorCode.UNKNOWN_DEVICE: 404,
    FinanceErrorCode.UNKNOWN_LOAN: 404,
    FinanceErrorCode.UNKNOWN_OFFER: 404,
    FinanceErrorCode.UNKNOWN_APPLICATION: 404,
    FinanceErrorCode.WRONG_ROLE: 403,
    FinanceErrorCode.NOT_YOUR_PREFIX: 403,
    FinanceErrorCode.NOT_YOUR_GOODS: 403,
    FinanceErrorCode.NO_LINE: 409,
    FinanceErrorCode.NOT_IN_SUPERVISED_WAREHOUSE: 409,
    FinanceErrorCode.ALREADY_PLEDGED: 409,
    FinanceErrorCode.DOUBLE_PLEDGE: 409,
    FinanceErrorCode.NOT_PLEDGED: 409,
    FinanceErrorCode.OUR_LIVE_PLEDGE: 409,
    FinanceErrorCode.SITE_TAKEN: 409,
    FinanceErrorCode.LOT_SECURES_LOANS: 409,
    FinanceErrorCode.LIMIT_BELOW_DRAWN: 409,
    FinanceErrorCode.OFFER_NOT_OPEN: 409,
    FinanceErrorCode.OFFER_EXPIRED: 409,
    FinanceErrorCode.OFFER_WITHDRAWN: 409,
    FinanceErrorCode.NOT_IN_REVIEW: 409,
    FinanceErrorCode.REVIEW_REFUSED: 409,
    FinanceErrorCode.PROGRAMME_IN_RUN_OFF: 409,
    FinanceErrorCode.LINE_NOT_SETTLED: 409,
    FinanceErrorCode.LINE_CLOSED: 409,
    FinanceErrorCode.UNKNOWN_RECEIVABLE: 404,
    FinanceErrorCode.RECEIVABLE_NOT_OPEN: 409,
    FinanceErrorCode.RECEIVABLE_NOT_CONFIRMED: 409,
    FinanceErrorCode.NO_POLICY: 409,
    FinanceErrorCode.LIMIT_EXCEEDED: 409,
}
_READS = frozenset({"GET", "HEAD"})


def finance_status(code: FinanceErrorCode, method: str) -> int:
    """The HTTP status a finance refusal answers a `method` request with."""
    status = _FINANCE_STATUS[code]
    return 400 if status == 422 and method in _READS else status


# The problem types of the EPCIS 2.0 REST binding (GS1's OpenAPI, components/responses): an
# error under /epcis carries the standard's exception as its type, unless the route names a
# more precise one (QueryParameterException, CaptureLimitExceededException, ...); `code`
# stays tracefin's stable, finer-grained reason either way.
EPCIS_BASE_PATH = "/epcis"
_EPCIS_EXCEPTIONS = {
    400: "epcisException:ValidationException",
    401: "epcisException:SecurityException",
    403: "epcisException:SecurityException",
    404: "epcisException:NoSuchResourceException",
    406: "epcisException:NotAcceptableException",
    409: "epcisException:ResourceAlreadyExistsException",
    413: "epcisException:CapturePayloadTooLargeException",
    414: "epcisException:URITooLongException",
    415: "epcisException:UnsupportedMediaTypeException",
    500: "epcisException:ImplementationException",
    501: "epcisException:ImplementationException",
}


def in_rest_binding(path: str | None) -> bool:
    """Whether `path` is a resource of the EPCIS 2.0 REST binding (base path /epcis)."""
    return path is not None and (path == EPCIS_BASE_PATH or path.startswith(EPCIS_BASE_PATH + "/"))


def problem_response(
    status: int, code: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    standard = _EPCIS_EXCEPTIONS.get(status) if in_rest_binding(instance) else None
    body: dict[str, Any] = {
        "type": standard or f"https://tracefin.dev/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(FinanceError)
    async def on_finance(request: Request, exc: FinanceError) -> JSONResponse:
        status = finance_status(exc.code, request.method)
        return problem_response(status, exc.code, exc.detail, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg"))}
            for error in exc.errors()
        ]
        return problem_response(
            422,
            "invalid_request",
            "the request does not match the API",
            request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = problem_response(exc.status_code, code, str(exc.detail), request.url.path)
        for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405 (RFC 9110)
            response.headers[name] = value
        return response

    @app.exception_handler(QueryCanceled)
    async def on_statement_timeout(request: Request, exc: QueryCanceled) -> JSONResponse:
        # PostgreSQL cancelled a statement past the API's statement_timeout; its transaction
        # rolled back, so nothing of the request is stored.
        path = request.url.path
        if request.method in _READS:
            extra = (
                {"type": "epcisException:QueryTooComplexException"} if in_rest_binding(path) else {}
            )
            return problem_response(
                413,
                "query_too_complex",
                "the query ran longer than this server allows; narrow it (a time window, an"
                " identifier, a bizStep) or ask for smaller pages",
                path,
                **extra,
            )
        response = problem_response(
            503, "statement_timeout", "the database took too long; try again later", path
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "internal_error", "something went wrong on our side", request.url.path
        )
