"""People and four eyes (issue 15 item 5) over the seeded world: `bank` holds line 1 to `maker`
and a pledge of LOT on it. Users are added per test (the world is a copy of its own)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from records import people_store, registry_store
from tests.integration.test_credit_ledger import apply, bank_value, borrow, ledger
from tests.support.api import Api
from tests.support.world import LOT, LOT_URI

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, used by name


class People:
    """The API as named users: keys by `org/user`."""

    def __init__(self, world: Api) -> None:
        self.world = world
        self.keys: dict[str, str] = {}

    def add(self, org: str, name: str, *roles: str) -> str:
        _, key = people_store.add_user(self.world.conn, org, name, roles)
        self.keys[f"{org}/{name}"] = key
        return f"{org}/{name}"

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        response: httpx.Response = self.world.client.request(
            method, path, headers=headers, **kwargs
        )
        return response


@pytest.fixture
def people(world: Api) -> People:
    people_store.set_four_eyes(world.conn, "bank", True)
    made = People(world)
    made.add("bank", "alice", "maker", "checker")  # makes, and checks others' requests
    made.add("bank", "bob", "checker")
    made.add("bank", "vera", "viewer")
    made.add("other-bank", "dave", "maker", "checker")
    return made


def _journal(world: Api, action: str) -> list[tuple[str, dict[str, Any]]]:
    rows = world.conn.execute(
        "SELECT actor, detail FROM finance_journal WHERE action = %s ORDER BY id", (action,)
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _line_status(world: Api) -> str:
    row = world.conn.execute("SELECT status FROM credit_lines WHERE id = 1").fetchone()
    assert row is not None
    return str(row[0])


def test_maker_cannot_check_own_request_a_second_checker_can_another_orgs_cannot(
    people: People,
) -> None:
    world = people.world
    frozen = people.call("POST", "/v1/lines/1/freeze", "bank/alice")  # not gated
    assert (frozen.status_code, frozen.json()["status"]) == (200, "frozen"), frozen.text
    asked = people.call("POST", "/v1/lines/1/unfreeze", "bank/alice")
    assert asked.status_code == 202, asked.text
    request = asked.json()["request"]
    assert asked.json() == {"request": request, "state": "pending"}
    assert _line_status(world) == "frozen"  # nothing done yet

    own = people.call("POST", f"/v1/requests/{request}/approve", "bank/alice")
    assert (own.status_code, own.json()["code"]) == (403, "same_user")
    foreign = people.call("POST", f"/v1/requests/{request}/approve", "other-bank/dave")
    assert (foreign.status_code, foreign.json()["code"]) == (404, "unknown_request")
    viewer = people.call("POST", f"/v1/requests/{request}/approve", "bank/vera")
    assert (viewer.status_code, viewer.json()["code"]) == (403, "forbidden_user_role")
    assert _line_status(world) == "frozen"

    approved = people.call("POST", f"/v1/requests/{request}/approve", "bank/bob")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["request"]["state"], body["request"]["maker"]) == ("approved", "bank/alice")
    assert (body["request"]["checker"], body["result"]["status"]) == ("bank/bob", "active")
    assert _line_status(world) == "active"
    again = people.call("POST", f"/v1/requests/{request}/approve", "bank/bob")
    assert (again.status_code, again.json()["code"]) == (409, "request_not_pending")

    # The journal names the people: the freeze its maker, the unfreeze its checker and both.
    assert _journal(world, "line_frozen") == [("bank/alice", {})]
    assert _journal(world, "four_eyes_requested") == [
        ("bank/alice", {"kind": "set_line_status", "params": {"line_id": 1, "status": "active"}})
    ]
    assert _journal(world, "line_active") == [
        ("bank/bob", {"maker": "bank/alice", "checker": "bank/bob"})
    ]
    audit = world.get("/v1/audit", "regulator").json()
    assert audit["clean"] is True, audit  # the named entries are sealed as any other


def test_a_request_that_must_be_refused_is_refused_at_once(people: People) -> None:
    refused = people.call("POST", "/v1/lines/999/unfreeze", "bank/alice")
    assert (refused.status_code, refused.json()["code"]) == (404, "unknown_line")
    too_many = people.call("DELETE", f"/v1/pledges{LOT}", "bank/alice", params={"quantity": 10**9})
    assert (too_many.status_code, too_many.json()["code"]) == (422, "invalid_input")
    nobody = people.call(
        "POST",
        "/v1/applications/999/review",
        "bank/alice",
        json={"decision": "approve", "reason": "good goods"},
    )
    assert (nobody.status_code, nobody.json()["code"]) == (404, "unknown_application")
    assert people.call("GET", "/v1/requests", "bank/bob").json() == []
    assert _journal(people.world, "four_eyes_requested") == []


def test_release_waits_for_a_checker_and_a_request_refused_later_fails(people: People) -> None:
    world = people.world
    first = people.call("DELETE", f"/v1/pledges{LOT}", "bank/alice")
    second = people.call("DELETE", f"/v1/pledges{LOT}", "bank/alice")
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    # The dry run stopped at the chain: the lot is still pledged, on chain and here.
    status = world.get(f"/v1/lots{LOT}", "bank").json()
    assert status["pledge"] is not None, status

    released = people.call("POST", f"/v1/requests/{first.json()['request']}/approve", "bank/bob")
    assert released.status_code == 200, released.text
    assert released.json()["result"]["tx"].startswith("0x")
    assert _journal(world, "released")[0][0] == "bank/bob"

    late = people.call("POST", f"/v1/requests/{second.json()['request']}/approve", "bank/bob")
    assert (late.status_code, late.json()["code"]) == (409, "not_pledged")
    listed = people.call("GET", "/v1/requests", "bank/vera", params={"state": "failed"}).json()
    assert [(r["id"], r["error_code"]) for r in listed] == [
        (second.json()["request"], "not_pledged")
    ]


def test_relimit_and_close_are_gated_a_new_line_is_not_and_a_reject_does_nothing(
    people: People,
) -> None:
    world = people.world
    relimit = people.call(
        "POST",
        "/v1/lines",
        "bank/alice",
        json={"borrower": "maker", "limit": "5.00", "currency": "CNY"},
    )
    assert relimit.status_code == 202, relimit.text
    opened = people.call(
        "POST",
        "/v1/lines",
        "bank/alice",
        json={"borrower": "rival", "limit": "5.00", "currency": "CNY"},
    )
    assert opened.status_code == 201, opened.text
    # Closing the new line (settled: nothing drawn, nothing pledged) waits for a checker too.
    close = people.call("POST", f"/v1/lines/{opened.json()['id']}/close", "bank/alice")
    assert close.status_code == 202, close.text
    closed = people.call("POST", f"/v1/requests/{close.json()['request']}/approve", "bank/bob")
    assert closed.json()["result"]["status"] == "closed", closed.text
    assert _journal(world, "line_closed") == [
        ("bank/bob", {"maker": "bank/alice", "checker": "bank/bob"})
    ]
    rejected = people.call("POST", f"/v1/requests/{relimit.json()['request']}/reject", "bank/bob")
    assert (rejected.status_code, rejected.json()["state"]) == (200, "rejected"), rejected.text
    row = world.conn.execute("SELECT limit_minor FROM credit_lines WHERE id = 1").fetchone()
    assert row == (100_000,)  # 1000.00 CNY, as seeded
    assert _journal(world, "four_eyes_rejected") == [
        ("bank/bob", {"maker": "bank/alice", "checker": "bank/bob"})
    ]


def test_four_eyes_off_runs_at_once_and_names_the_person(world: Api) -> None:
    """Off (the default outside production): a gated operation runs at once, as before; the
    key `org add` printed is admin's, and the journal says so."""
    response = world.call("POST", "/v1/lines/1/unfreeze", "bank")
    assert response.status_code == 200, response.text
    frozen = world.call("POST", "/v1/lines/1/freeze", "bank")
    assert frozen.status_code == 200, frozen.text
    assert _journal(world, "line_frozen") == [("bank/admin", {})]


def test_a_viewer_only_reads_and_a_checker_alone_makes_no_gated_request(people: People) -> None:
    assert people.call("GET", "/v1/lines", "bank/vera").status_code == 200
    write = people.call("POST", "/v1/lines/1/freeze", "bank/vera")
    assert (write.status_code, write.json()["code"]) == (403, "forbidden_user_role")
    gated = people.call("POST", "/v1/lines/1/unfreeze", "bank/bob")
    assert (gated.status_code, gated.json()["code"]) == (403, "forbidden_user_role")


def test_users_are_named_once_per_org_with_known_roles(world: Api) -> None:
    people_store.add_user(world.conn, "bank", "alice", ["maker"])
    people_store.add_user(world.conn, "maker", "alice", ["viewer"])  # another org's alice
    for org, name, roles in (
        ("bank", "alice", ["checker"]),  # taken in this org
        ("bank", "admin", ["maker"]),  # every org's first user
        ("bank", "cli", ["maker"]),  # the journal's name for the operator's CLI
        ("bank", "Alice", ["maker"]),
        ("bank", "zed", ["owner"]),
        ("bank", "zed", []),
        ("nobody", "zed", ["maker"]),
    ):
        with pytest.raises(registry_store.RegistryError):
            people_store.add_user(world.conn, org, name, roles)
    with pytest.raises(registry_store.RegistryError):
        people_store.set_four_eyes(world.conn, "maker", True)  # a financier's control
    assert [(u.name, u.roles) for u in people_store.users(world.conn, "bank")] == [
        ("admin", ("maker", "checker", "viewer")),
        ("alice", ("maker",)),
    ]


def test_reviews_take_two_people_and_a_release_securing_loans_is_refused_at_once(
    ledger: Api,
) -> None:
    """The issue's cases on a lot securing a loan, with a referred application waiting."""
    value = bank_value(ledger)
    referred = apply(ledger, "maker", LOT_URI, f"{value / 100:.2f}").json()
    assert referred["decision"] == "refer", referred  # above the LTV cap, no guarantee
    borrow(ledger, "5.00")
    people = People(ledger)
    people.add("bank", "alice", "maker")
    people.add("bank", "bob", "checker")
    people_store.set_four_eyes(ledger.conn, "bank", True)

    secures = people.call("DELETE", f"/v1/pledges{LOT}", "bank/alice")
    assert (secures.status_code, secures.json()["code"]) == (409, "lot_secures_loans")
    review = f"/v1/applications/{referred['application']}/review"
    cannot = people.call(
        "POST", review, "bank/alice", json={"decision": "approve", "reason": "looks fine"}
    )
    assert (cannot.status_code, cannot.json()["code"]) == (409, "review_refused")
    assert people.call("GET", "/v1/requests", "bank/bob").json() == []  # nothing stored

    decline = people.call(
        "POST", review, "bank/alice", json={"decision": "decline", "reason": "exposure is full"}
    )
    assert decline.status_code == 202, decline.text
    assert len(ledger.get("/v1/reviews", "bank").json()) == 1  # still waiting
    approved = people.call("POST", f"/v1/requests/{decline.json()['request']}/approve", "bank/bob")
    assert approved.status_code == 200, approved.text
    assert approved.json()["result"]["review"] == "declined"
    assert ledger.get("/v1/reviews", "bank").json() == []
    assert _journal(ledger, "review_declined") == [
        (
            "bank/bob",
            {"reason": "exposure is full", "maker": "bank/alice", "checker": "bank/bob"},
        )
    ]
