"""Four eyes (maker-checker, issue 15 item 5): a financier's gated operations wait for a second
person when the financier turned four eyes on.

A gated operation is a finance service function listed in `GATED`. Its route calls it through
`submit` instead of directly. With four eyes off (or for a call the gate does not cover, such as
opening a new line) `submit` runs it at once. With four eyes on, `submit` first runs it inside a
transaction that is rolled back, so a request that would be refused is refused at once with the
operation's own error; an operation that reaches the chain (a release) stops there, with every
check behind it. It then stores the request (kind, inputs, maker) and raises `Pending`; a checker
of the same org who is not the maker approves it (`approve`: the operation runs now, checked
again; if refused now, the request is `failed` with the error code) or rejects it (`reject`).

Gating one more operation: one `Gated(service.that_operation)` line in `GATED`, and its route
calls `submit(conn, journal, person, service.that_operation, name=value, ...)`. The keyword
inputs are stored as JSON, so they are ints, strings, booleans or None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg

from finance import service
from finance.errors import FinanceError
from finance.store import credit
from finance.store import requests as request_store
from finance.store.journal import Journal
from finance.store.requests import FourEyesRequest
from ledger.chain import Chain
from records import people_store, registry_store
from records.db import Conn
from records.people_store import Person
from records.registry_store import Org

_T = TypeVar("_T")

# Whether a call needs four eyes, given the financier and the call's keyword inputs.
Applies = Callable[[Conn, Org, Mapping[str, Any]], bool]


def _always(conn: Conn, financier: Org, params: Mapping[str, Any]) -> bool:
    return True


def _relimits(conn: Conn, financier: Org, params: Mapping[str, Any]) -> bool:
    """Changing an existing line's limit is gated; opening a new line is not."""
    client = registry_store.get_org(conn, str(params.get("borrower")))
    return client is not None and credit.line_between(conn, financier.id, client.id) is not None


def _unfreezes(conn: Conn, financier: Org, params: Mapping[str, Any]) -> bool:
    """Unfreezing is gated; freezing (protective) is not."""
    return params.get("status") == "active"


@dataclass(frozen=True)
class Gated:
    """A finance operation four eyes covers: `operation(conn, journal, [chain,] financier,
    **params)`; `chain`: it takes the current chain before the financier (a release)."""

    operation: Callable[..., Any]
    applies: Applies = _always
    chain: bool = False

    @property
    def kind(self) -> str:
        return self.operation.__name__

    def run(
        self, conn: Conn, journal: Journal, chain: Chain | None, org: str, params: Mapping[str, Any]
    ) -> Any:
        if self.chain:
            return self.operation(conn, journal, chain, org, **params)
        return self.operation(conn, journal, org, **params)


GATED: dict[str, Gated] = {
    gated.kind: gated
    for gated in (
        Gated(service.review),  # approving or declining a referred application
        Gated(service.open_line, applies=_relimits),  # changing an existing line's limit
        Gated(service.set_line_status, applies=_unfreezes),  # unfreezing
        Gated(service.release, chain=True),  # releasing collateral (in full or in part)
        Gated(service.close_line),  # closing a line
    )
}


class Pending(Exception):
    """The operation was checked and stored as a request; it waits for a checker."""

    def __init__(self, request: FourEyesRequest) -> None:
        super().__init__(f"request {request.id} waits for a checker")
        self.request = request


class Refused(Exception):
    """A request that cannot be made or decided as asked: `code` is stable
    (forbidden_user_role, unknown_request, same_user, request_not_pending, four_eyes_on)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class _ReachedChain(Exception):
    """A dry run got as far as the chain: every check before it passed."""


class _DryChain:
    """Stands for the chain in a dry run: the first use of it ends the run (nothing is sent)."""

    def __getattr__(self, name: str) -> Any:
        raise _ReachedChain(name)


def _gated(operation: Callable[..., Any]) -> Gated:
    gated = GATED.get(operation.__name__)
    if gated is None or gated.operation is not operation:
        raise KeyError(f"{operation.__name__} is not a gated operation (finance/four_eyes.py)")
    return gated


def submit(
    conn: Conn,
    journal: Journal,
    person: Person,
    operation: Callable[..., _T],
    *,
    chain: Chain | None = None,
    **params: Any,
) -> _T:
    """Run a gated operation for `person`, or, with its org's four eyes on, check it and store
    it as a request for a checker (raises `Pending`). Refusals are the operation's own."""
    gated = _gated(operation)
    if not person.has("maker"):
        raise Refused(
            "forbidden_user_role", f"{gated.kind} needs a maker; {person.name} is not one"
        )
    if not (person.four_eyes and gated.applies(conn, person, params)):
        return cast(_T, gated.run(conn, journal, chain, person.slug, params))
    _dry_run(conn, journal, gated, person.slug, params)
    with conn.transaction():
        request = request_store.add_request(conn, person.id, gated.kind, params, person.user_id)
        journal.write(
            conn,
            person.slug,
            "four_eyes_requested",
            f"request:{request.id}",
            {"kind": gated.kind, "params": dict(params)},
        )
    raise Pending(request)


def unattended(
    conn: Conn,
    journal: Journal,
    financier: str,
    operation: Callable[..., _T],
    *,
    chain: Chain | None = None,
    **params: Any,
) -> _T:
    """A gated operation with no person behind it (the operator's CLI): run at once while the
    financier's four eyes is off; refused `four_eyes_on` while it is on, since nobody here is
    a second person (the API's maker and checker are)."""
    gated = _gated(operation)
    org = registry_store.get_org(conn, financier)
    if (
        org is not None
        and people_store.four_eyes(conn, org.id)
        and gated.applies(conn, org, params)
    ):
        raise Refused(
            "four_eyes_on",
            f"{financier} has four eyes on: {gated.kind} is one user's request and another's"
            " approval, through the API",
        )
    return cast(_T, gated.run(conn, journal, chain, financier, params))


def _dry_run(
    conn: Conn, journal: Journal, gated: Gated, org: str, params: Mapping[str, Any]
) -> None:
    """The operation's checks, and nothing of it kept: run in a transaction rolled back."""
    try:
        with conn.transaction():
            gated.run(conn, journal, cast(Chain, _DryChain()), org, params)
            raise psycopg.Rollback()
    except _ReachedChain:
        pass  # rolled back by the transaction; the checks before the chain passed


@dataclass(frozen=True)
class Approved:
    request: FourEyesRequest
    result: Any  # what the operation answers (a line, a release, a review)


def _pending_request(conn: Conn, checker: Person, request_id: int) -> FourEyesRequest:
    found = request_store.get_request(conn, request_id, for_update=True)
    if found is None or found.org_id != checker.id:
        # Another org's requests are not this one's to learn of: as if there were none.
        raise Refused("unknown_request", f"{checker.slug} has no request {request_id}")
    if found.maker_user_id == checker.user_id:
        raise Refused("same_user", f"{checker.name} made request {request_id}: another checks it")
    if found.state != "pending":
        raise Refused("request_not_pending", f"request {request_id} is {found.state}")
    return found


def approve(
    conn: Conn,
    journal: Journal,
    checker: Person,
    request_id: int,
    chain: Callable[[], Chain],
) -> Approved:
    """A checker of the request's org, not its maker, approves it: the operation runs now (its
    journal entries name the checker, and the maker and checker in their detail). Refused now,
    the request is `failed` with the error's code and the error is raised."""
    refused: FinanceError | None = None
    with conn.transaction():
        request = _pending_request(conn, checker, request_id)
        gated = GATED[request.kind]
        signed = journal.acting(
            checker.slug, checker.user, {"maker": request.maker, "checker": checker.name}
        )
        try:
            with conn.transaction():
                result = gated.run(
                    conn, signed, chain() if gated.chain else None, checker.slug, request.params
                )
        except FinanceError as exc:
            refused = exc
            request_store.decide(conn, request_id, "failed", checker.user_id, str(exc.code))
            signed.write(
                conn,
                checker.slug,
                "four_eyes_failed",
                f"request:{request_id}",
                {"kind": request.kind, "code": str(exc.code)},
            )
        else:
            request_store.decide(conn, request_id, "approved", checker.user_id)
        decided = request_store.get_request(conn, request_id)
    if refused is not None:
        raise refused
    assert decided is not None
    return Approved(decided, result)


def reject(conn: Conn, journal: Journal, checker: Person, request_id: int) -> FourEyesRequest:
    """A checker of the request's org, not its maker, rejects it: nothing of it is done."""
    with conn.transaction():
        request = _pending_request(conn, checker, request_id)
        request_store.decide(conn, request_id, "rejected", checker.user_id)
        journal.acting(
            checker.slug, checker.user, {"maker": request.maker, "checker": checker.name}
        ).write(conn, checker.slug, "four_eyes_rejected", f"request:{request_id}", {})
        decided = request_store.get_request(conn, request_id)
    assert decided is not None
    return decided


def requests(conn: Conn, person: Person, state: str | None = None) -> list[FourEyesRequest]:
    """The requests of the person's org (in one state, or all), newest first."""
    return request_store.requests_of(conn, person.id, state)
