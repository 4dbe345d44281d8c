"""Capture jobs (EPCIS 2.0 REST binding, issue 16 item 1): POST /epcis/capture answers 202 with
the job's Location, the capture worker works the job from its row, and the job shows each
event's outcome. Real PostgreSQL; the API in process; the worker in process, or as the
`tracefin capture-worker` process where it is killed."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import orjson
import psycopg
import pytest

from epcis.event_hash import event_hash_digest, hash_id_from_digest
from ingest.capture import CAPTURE_JOBS_TOPIC
from ingest.capture_jobs import CaptureJobWorker
from records.db import Conn
from tests.support.api import Api, SeededWorld, serve
from tests.support.events import make_event
from tests.support.gs1_examples import (
    CAPTURE_JOB_CONFIG,
    EXAMPLES,
    OPENAPI,
    XML_EXAMPLES,
    XML_WITHOUT_EVENTS,
    own_the_examples,
    post_capture,
    work_all,
)
from tests.support.processes import WorkerProcess

pytestmark = pytest.mark.integration

CONFIG = CAPTURE_JOB_CONFIG
PROBLEM_JSON = "application/problem+json"


def document(*events: dict[str, object]) -> dict[str, object]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-01-01T00:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def hash_id(event: dict[str, object]) -> str:
    return hash_id_from_digest(event_hash_digest(event))


def job_of(world: Api, response: httpx.Response, who: str = "maker") -> dict[str, Any]:
    assert response.status_code == 202, response.text
    answer = world.get(response.headers["Location"], who)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def stored(conn: Conn, *events: dict[str, object]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM events WHERE event_hash = ANY(%s)",
        ([event_hash_digest(event) for event in events],),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_document_is_queued_202_then_captured_event_by_event(
    world: Api, mine: SeededWorld
) -> None:
    first, second = make_event(), make_event()
    response = post_capture(world, document(first, second))
    assert response.status_code == 202, response.text
    assert response.content == b""  # the standard's 202 has no body: the job is at Location
    location = response.headers["Location"]
    assert location.startswith("/epcis/capture/")
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert response.headers["GS1-EPCIS-Capture-Limit"] == "10000"
    assert response.headers["GS1-EPCIS-Capture-File-Size-Limit"] == str(256 * 1024)
    queued = job_of(world, response)
    assert queued["captureID"] == location.rsplit("/", 1)[1]
    assert (queued["running"], queued["success"], queued["errors"]) == (True, True, [])
    assert queued["captureErrorBehaviour"] == "rollback"  # the standard's default
    assert "finishedAt" not in queued
    assert stored(world.conn, first, second) == 0  # nothing is stored until the worker works it

    assert work_all(mine.database_url) == 1
    done = job_of(world, response)
    assert (done["running"], done["success"], done["errors"]) == (False, True, [])
    assert done["finishedAt"] >= done["createdAt"]
    assert done["events"] == [
        {"index": 0, "eventID": hash_id(first), "status": "accepted"},
        {"index": 1, "eventID": hash_id(second), "status": "accepted"},
    ]
    assert stored(world.conn, first, second) == 2
    found = world.get("/epcis/events", "maker", params={"EQ_eventID": hash_id(first)})
    assert len(found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 1
    # Stored as HTTP capture is: under the org, by the API key that sent it (its prefix).
    origin = world.conn.execute(
        "SELECT e.device_id, e.topic, a.channel, a.api_user FROM events e"
        " JOIN attestations a ON a.event_hash = e.event_hash WHERE e.event_hash = %s",
        (event_hash_digest(first),),
    ).fetchall()
    assert origin == [("http-capture", CAPTURE_JOBS_TOPIC, "http", world.keys["maker"][:8])]

    # The same event again, with a new one: a duplicate, stored once, and the new one accepted.
    third = make_event()
    again = post_capture(world, document(first, third))
    work_all(mine.database_url)
    assert [(e["eventID"], e["status"]) for e in job_of(world, again)["events"]] == [
        (hash_id(first), "duplicate"),
        (hash_id(third), "accepted"),
    ]
    assert stored(world.conn, first, third) == 2


def capture_job_schema() -> jsonschema_rs.Validator:
    """GS1's CaptureJob schema, from the REST binding's OpenAPI document (its one reference,
    the RFC 7807 problem, resolved in place).

    Its `oneOf` says "`errors` or `errorFile`" with two branches that require nothing, so every
    object matches both and none could pass; each branch is made to require its property, as
    its description means."""
    schemas = orjson.loads(OPENAPI.read_bytes())["components"]["schemas"]
    text = orjson.dumps(schemas["CaptureJob"]).replace(
        b'{"$ref":"#/components/schemas/RFC7807ProblemResponseBody"}',
        orjson.dumps(schemas["RFC7807ProblemResponseBody"]),
    )
    assert b"$ref" not in text
    schema = orjson.loads(text)
    either = schema["allOf"][1]["oneOf"]
    assert [list(branch["properties"]) for branch in either] == [["errors"], ["errorFile"]]
    for branch in either:
        branch["required"] = list(branch["properties"])
    return jsonschema_rs.Draft7Validator(schema, validate_formats=True)


def test_jobs_are_the_standards_capture_jobs(world: Api, mine: SeededWorld) -> None:
    schema = capture_job_schema()
    waiting = post_capture(world, document(make_event()))
    failing = post_capture(world, document(make_event(), make_event(bizStep="teleporting")))
    queued = job_of(world, waiting)
    work_all(mine.database_url)
    jobs = [queued, job_of(world, waiting), job_of(world, failing)]
    assert [(job["running"], job["success"]) for job in jobs] == [
        (True, True),
        (False, True),
        (False, False),
    ]
    for job in [*jobs, *world.get("/epcis/capture", "maker").json()]:
        errors = [error.message for error in schema.iter_errors(job)]
        assert errors == [], job
    assert jobs[2]["errors"][0]["type"] == "epcisException:ValidationException"


def test_rollback_stores_nothing_of_a_failing_job_and_proceed_stores_the_good_events(
    world: Api, mine: SeededWorld
) -> None:
    good, bad = make_event(), make_event(bizStep="teleporting")
    rolled_back = post_capture(world, document(good, bad))  # rollback: the default
    proceeded = post_capture(
        world, document(good, bad), **{"GS1-Capture-Error-Behaviour": "proceed"}
    )
    assert work_all(mine.database_url) == 2

    job = job_of(world, rolled_back)
    assert (job["running"], job["success"], job["captureErrorBehaviour"]) == (
        False,
        False,
        "rollback",
    )
    assert job["events"] == []
    assert [(e["index"], e["code"], e["status"], e["type"]) for e in job["errors"]] == [
        (1, "invalid_vocabulary", 400, "epcisException:ValidationException")
    ]
    assert "teleporting" in job["errors"][0]["detail"]

    job = job_of(world, proceeded)
    assert (job["running"], job["success"], job["captureErrorBehaviour"]) == (
        False,
        False,
        "proceed",
    )
    # The rolled-back job stored nothing, so the good event is new to the proceeding one.
    assert job["events"] == [{"index": 0, "eventID": hash_id(good), "status": "accepted"}]
    assert [(e["index"], e["code"]) for e in job["errors"]] == [(1, "invalid_vocabulary")]
    assert stored(world.conn, good) == 1
    # Each refusal is kept to inspect, as every capture's are, under the route it came by.
    kept = world.conn.execute(
        "SELECT reason, item_index FROM dead_letters WHERE topic = %s", (CAPTURE_JOBS_TOPIC,)
    ).fetchall()
    assert kept == [("invalid_vocabulary", 1)]  # the same payload refused twice: kept once


def test_rollback_with_every_event_valid_stores_them_all(world: Api, mine: SeededWorld) -> None:
    events = [make_event() for _ in range(3)]
    response = post_capture(world, document(*events), **{"GS1-Capture-Error-Behaviour": "rollback"})
    work_all(mine.database_url)
    job = job_of(world, response)
    assert (job["success"], [e["status"] for e in job["events"]]) == (True, ["accepted"] * 3)
    assert stored(world.conn, *events) == 3


def test_only_an_unreadable_body_is_refused_400(world: Api) -> None:
    def jobs() -> int:
        row = world.conn.execute("SELECT count(*) FROM capture_jobs").fetchone()
        assert row is not None
        return int(row[0])

    for body, code in (
        (b"{nope", "not_json"),
        (document(), "not_an_event"),
        (b'"just a string"', "not_an_event"),
        (orjson.dumps(make_event(**{"example:note": "a\x00"})), "invalid_text"),
    ):
        refused = post_capture(world, body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.headers["Content-Type"] == PROBLEM_JSON
        problem = refused.json()
        assert (problem["code"], problem["status"]) == (code, 400)
        assert problem["type"] == "epcisException:ValidationException"
        assert "Traceback" not in refused.text
    odd = post_capture(world, document(make_event()), **{"GS1-Capture-Error-Behaviour": "maybe"})
    assert (odd.status_code, odd.json()["code"]) == (400, "invalid_capture_error_behaviour")
    assert jobs() == 0
    # Dead-lettered like any refused payload (the odd header refused the request, not a payload).
    kept = world.conn.execute(
        "SELECT reason FROM dead_letters WHERE topic = %s ORDER BY id", (CAPTURE_JOBS_TOPIC,)
    ).fetchall()
    assert [row[0] for row in kept] == ["not_json", "not_an_event", "not_an_event", "invalid_text"]
    # A document that parses but holds only invalid events is a job, whose result says why.
    accepted = post_capture(world, document(make_event(bizStep="teleporting")))
    assert accepted.status_code == 202, accepted.text
    assert jobs() == 1


def test_over_the_capture_limits_is_413_with_the_limits_announced(mine: SeededWorld) -> None:
    with serve(mine, public_rate_per_minute=10_000, capture_max_events=2) as world:
        limits = {"GS1-EPCIS-Capture-Limit": "2", "GS1-EPCIS-Capture-File-Size-Limit": "262144"}
        too_many = post_capture(world, document(make_event(), make_event(), make_event()))
        too_large = post_capture(world, b"[" + b" " * 300_000 + b"]")
        # Larger than any body the server reads: refused before the route, the limits named.
        huge = post_capture(world, b"[" + b" " * 2_000_000 + b"]")
        for response, code in (
            (too_many, "capture_limit_exceeded"),
            (too_large, "payload_too_large"),
            (huge, "payload_too_large"),
        ):
            assert response.status_code == 413, response.text
            assert response.headers["Content-Type"] == PROBLEM_JSON
            assert response.json()["code"] == code
            assert {name: response.headers.get(name) for name in limits} == limits
        for response in (too_many, too_large):
            assert response.json()["type"] == "epcisException:CaptureLimitExceededException"
        assert "3 events" in too_many.json()["detail"]
        at_the_limit = post_capture(world, document(make_event(), make_event()))
        assert at_the_limit.status_code == 202, at_the_limit.text
        options = world.call("OPTIONS", "/epcis/capture", "maker")
        assert {name: options.headers.get(name) for name in limits} == limits


def test_options_announce_versions_limits_and_error_behaviours(world: Api) -> None:
    options = world.call("OPTIONS", "/epcis/capture", "maker")
    assert options.status_code == 204, options.text
    assert options.headers["GS1-EPCIS-Capture-Limit"] == "10000"
    assert options.headers["GS1-EPCIS-Capture-File-Size-Limit"] == "262144"
    assert options.headers["GS1-Capture-Error-Behaviour"] == "all"
    assert options.headers["Allow"] == "OPTIONS, POST, GET"
    assert (options.headers["GS1-EPCIS-Min"], options.headers["GS1-EPCIS-Max"]) == (
        "2.0.0",
        "2.0.0",
    )
    assert options.headers["GS1-CBV-Version"] == "2.0.0"
    location = post_capture(world, document(make_event())).headers["Location"]
    own = world.call("OPTIONS", location, "maker")
    assert (own.status_code, own.headers["Allow"]) == (204, "OPTIONS, GET")
    assert world.call("OPTIONS", location, "rival").status_code == 404


def test_an_org_sees_only_its_own_jobs(world: Api, mine: SeededWorld) -> None:
    location = post_capture(world, document(make_event())).headers["Location"]
    theirs = post_capture(world, document(make_event()), who="rival").headers["Location"]
    work_all(mine.database_url)
    assert world.get(location, "maker").status_code == 200
    other = world.get(location, "rival")
    unknown = world.get("/epcis/capture/00000000-0000-4000-8000-000000000000", "rival")
    nonsense = world.get("/epcis/capture/not-a-job", "rival")
    # Another org's job is answered exactly as an unknown one.
    for response in (other, unknown, nonsense):
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_capture_job"
    assert other.json()["detail"] == unknown.json()["detail"]
    listed = world.get("/epcis/capture", "rival").json()
    assert [job["captureID"] for job in listed] == [theirs.rsplit("/", 1)[1]]
    # Who may capture: the enterprises, as at /v1/capture; a key is needed to look.
    assert post_capture(world, document(make_event()), who="regulator").status_code == 403
    assert post_capture(world, document(make_event()), who="bank").status_code == 403
    assert world.get(location).status_code == 401
    assert world.get("/epcis/capture").status_code == 401


def test_finished_jobs_are_deleted_after_the_retention_and_their_events_stay(
    world: Api, mine: SeededWorld
) -> None:
    old_event, recent_event = make_event(), make_event()
    old = post_capture(world, document(old_event)).headers["Location"]
    recent = post_capture(world, document(recent_event)).headers["Location"]
    work_all(mine.database_url)
    waiting = post_capture(world, document(make_event())).headers["Location"]  # not worked
    ids = {loc: loc.rsplit("/", 1)[1] for loc in (old, recent, waiting)}
    long_ago = datetime.now(UTC) - timedelta(days=31)
    world.conn.execute(
        "UPDATE capture_jobs SET finished_at = %s WHERE capture_id = %s", (long_ago, ids[old])
    )
    world.conn.execute(  # a job waiting this long (no worker ran) is never deleted
        "UPDATE capture_jobs SET created_at = %s WHERE capture_id = %s", (long_ago, ids[waiting])
    )
    worker = CaptureJobWorker(mine.database_url, replace(CONFIG, retention=timedelta(days=30)))
    with psycopg.connect(mine.database_url, autocommit=True) as conn:
        assert worker.delete_expired(conn) == 1
        assert worker.delete_expired(conn) == 0
    gone = world.get(old, "maker")
    assert (gone.status_code, gone.json()["code"]) == (404, "unknown_capture_job")
    assert world.get(recent, "maker").json()["running"] is False
    assert world.get(waiting, "maker").json()["running"] is True
    assert stored(world.conn, old_event, recent_event) == 2  # the receipt went, not the events
    attempts = world.conn.execute(
        "SELECT count(*) FROM capture_job_attempts a LEFT JOIN capture_jobs j ON j.id = a.job_id"
        " WHERE j.id IS NULL"
    ).fetchone()
    assert attempts == (0,)


def test_the_jobs_list_is_paged_newest_first(world: Api) -> None:
    ids = [
        post_capture(world, document(make_event())).headers["Location"].rsplit("/", 1)[1]
        for _ in range(3)
    ]
    first = world.get("/epcis/capture", "maker", params={"perPage": 2})
    assert first.status_code == 200, first.text
    assert [job["captureID"] for job in first.json()] == ids[::-1][:2]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    following = world.get(link[1 : link.index(">")], "maker")
    assert [job["captureID"] for job in following.json()] == ids[:1]
    assert "Link" not in following.headers
    for bad in ({"perPage": "0"}, {"perPage": "many"}, {"nextPageToken": "x"}):
        refused = world.get("/epcis/capture", "maker", params=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["type"] == "epcisException:QueryParameterException"


def test_a_job_survives_a_restart_of_the_api(mine: SeededWorld) -> None:
    event = make_event()
    with serve(mine, public_rate_per_minute=10_000) as before:
        location = post_capture(before, document(event)).headers["Location"]
    # The API is gone; the job is a row, so a new API process knows it, and the worker works it.
    with serve(mine, public_rate_per_minute=10_000) as after:
        assert after.get(location, "maker").json()["running"] is True
        work_all(mine.database_url)
        job = after.get(location, "maker").json()
        assert (job["running"], job["success"]) == (False, True)
        assert job["events"] == [{"index": 0, "eventID": hash_id(event), "status": "accepted"}]


def test_workers_share_the_queue_and_work_each_job_once(world: Api, mine: SeededWorld) -> None:
    batches = [[make_event() for _ in range(3)] for _ in range(12)]
    locations = [post_capture(world, document(*events)).headers["Location"] for events in batches]
    workers = [CaptureJobWorker(mine.database_url, CONFIG) for _ in range(3)]

    def drain(worker: CaptureJobWorker) -> None:
        with (
            psycopg.connect(mine.database_url, autocommit=True) as conn,
            psycopg.connect(mine.database_url, autocommit=True) as side,
        ):
            while worker.work_next(conn, side):
                pass

    threads = [threading.Thread(target=drain, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(worker.finished for worker in workers) == len(batches)
    for location in locations:
        job = world.get(location, "maker").json()
        statuses = [e["status"] for e in job["events"]]
        assert (job["success"], statuses) == (True, ["accepted"] * 3), job
    assert stored(world.conn, *(event for events in batches for event in events)) == 36


def test_a_job_that_killed_its_worker_three_times_is_given_up(
    world: Api, mine: SeededWorld
) -> None:
    event = make_event()
    response = post_capture(world, document(event))
    capture_id = response.headers["Location"].rsplit("/", 1)[1]
    # What three workers that died on it leave behind: three attempts, the job still waiting.
    for _ in range(3):
        world.conn.execute(
            "INSERT INTO capture_job_attempts (job_id, started_at)"
            " SELECT id, now() FROM capture_jobs WHERE capture_id = %s",
            (capture_id,),
        )
    assert work_all(mine.database_url) == 1
    job = job_of(world, response)
    assert (job["running"], job["success"], job["events"]) == (False, False, [])
    assert [(e["code"], e["index"]) for e in job["errors"]] == [("capture_job_abandoned", -1)]
    assert stored(world.conn, event) == 0


def _capture_worker(mine: SeededWorld, tmp_path: Path) -> WorkerProcess:
    worker = WorkerProcess(
        ["capture-worker"], {"TRACEFIN_DATABASE_URL": mine.database_url}, tmp_path, "capture"
    )
    worker.start()
    worker.wait_for_log("capture worker running")
    return worker


def _wait_for(what: str, condition: Any, worker: WorkerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}:\n{worker.log_text()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_mid_job_leaves_it_whole_and_the_next_completes_it_once(
    world: Api, mine: SeededWorld, tmp_path: Path
) -> None:
    events = [make_event() for _ in range(20)]
    with psycopg.connect(mine.database_url) as blocker:
        # Hold the events table: the worker claims the job, then waits inside its transaction
        # to insert, which is where it is killed.
        blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        location = post_capture(world, document(*events)).headers["Location"]
        worker = _capture_worker(mine, tmp_path)
        try:

            def waiting_to_store() -> bool:
                row = world.conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%%INSERT INTO events%%'"
                ).fetchone()
                return row is not None and row[0] == 1

            _wait_for("the worker never reached the insert", waiting_to_store, worker)
            worker.kill()
        finally:
            blocker.rollback()
        assert stored(world.conn, *events) == 0
        job = world.get(location, "maker").json()
        assert job["running"] is True  # not finished, not half stored: to be worked again

        worker.start()  # as the supervisor restarts it
        try:
            _wait_for(
                "the job was not finished after the restart",
                lambda: world.get(location, "maker").json()["running"] is False,
                worker,
            )
            assert worker.alive
        finally:
            worker.stop()
    job = world.get(location, "maker").json()
    assert job["success"] is True
    assert [e["status"] for e in job["events"]] == ["accepted"] * 20
    assert stored(world.conn, *events) == 20  # exactly once: each event one row
    row = world.conn.execute(
        "SELECT count(*) FROM capture_job_attempts a JOIN capture_jobs j ON j.id = a.job_id"
        " WHERE j.capture_id = %s",
        (job["captureID"],),
    ).fetchone()
    assert row == (2,)  # the killed attempt and the one that finished it


@pytest.mark.slow
def test_a_poison_job_is_marked_failed_and_the_worker_goes_on(
    world: Api, mine: SeededWorld, tmp_path: Path
) -> None:
    # A stand-in for whatever the code cannot handle: the database refuses one event (as it
    # would a value out of its range), so storing that job raises.
    world.conn.execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.event::text LIKE '%%poison%%' THEN RAISE EXCEPTION 'poisoned'; END IF;"
        " RETURN NEW; END $$"
    )
    world.conn.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON events"
        " FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
    )
    poison = make_event(**{"example:note": "poison"})
    good = make_event()
    poisoned = post_capture(
        world, document(poison, make_event()), **{"GS1-Capture-Error-Behaviour": "proceed"}
    )
    following = post_capture(world, document(good))
    worker = _capture_worker(mine, tmp_path)
    try:
        _wait_for(
            "the good job after the poison one was not finished",
            lambda: world.get(following.headers["Location"], "maker").json()["running"] is False,
            worker,
        )
        assert worker.alive
        assert worker.terminate(timeout=15) == 0  # SIGTERM: it stops cleanly between jobs
    finally:
        worker.stop()
    assert "capture worker stopped after 2 jobs" in worker.log_text()
    failed = job_of(world, poisoned)
    assert (failed["running"], failed["success"], failed["events"]) == (False, False, [])
    assert [(e["code"], e["status"], e["index"]) for e in failed["errors"]] == [
        ("capture_job_failed", 500, -1)
    ]
    assert "poisoned" not in failed["errors"][0]["detail"]  # no internals to the client
    assert stored(world.conn, poison) == 0
    done = job_of(world, following)
    assert (done["success"], [e["status"] for e in done["events"]]) == (True, ["accepted"])
    assert stored(world.conn, good) == 1
    assert "marked failed" in worker.log_text()


def test_every_gs1_json_example_is_captured_as_a_job_and_found_again(
    world: Api, mine: SeededWorld
) -> None:
    own_the_examples(mine.database_url)
    examples = sorted(EXAMPLES.rglob("*.jsonld"))
    assert len(examples) == 47  # GS1's examples: 47 documents
    locations = {}
    for example in examples:
        response = post_capture(world, example.read_bytes())  # rollback: every event must be good
        assert response.status_code == 202, (example.name, response.text)
        locations[example.name] = response.headers["Location"]
    assert work_all(mine.database_url) == len(examples)
    event_ids = set()
    by_event: dict[str, list[str]] = {}
    for name, location in locations.items():
        job = world.get(location, "maker").json()
        assert (job["running"], job["success"], job["errors"]) == (False, True, []), (
            name,
            job["errors"],
        )
        assert job["events"], name
        event_ids |= {event["eventID"] for event in job["events"]}
        for event in job["events"]:
            by_event.setdefault(event["eventID"], []).append(event["status"])
    assert sum(map(len, by_event.values())) == 56  # GS1's examples: 56 events
    # Some examples repeat another's event: the first copy is stored (`error_declared` when it
    # carries a declaration, recorded with it), each other a duplicate or the declaration again.
    declared = [statuses for statuses in by_event.values() if statuses[0] == "error_declared"]
    assert declared  # GS1's examples do carry declarations
    for statuses in by_event.values():
        assert statuses[0] in ("accepted", "error_declared"), statuses
        assert set(statuses[1:]) <= {"duplicate", "error_declared"}, statuses
    for event_id in sorted(event_ids):
        found = world.get("/epcis/events", "maker", params={"EQ_eventID": event_id})
        assert found.status_code == 200, found.text
        listed = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert len(listed) == 1, event_id


# Examples without events (capture jobs, master data, a CBV illustration): tests/unit/
# test_xml_binding.py reads them; here only documents of events are captured.


def test_every_gs1_xml_example_is_captured_as_a_job_and_found_again(
    world: Api, mine: SeededWorld
) -> None:
    examples = [
        path
        for path in sorted(XML_EXAMPLES.rglob("*.xml"))
        if not any(part in path.as_posix() for part in XML_WITHOUT_EVENTS)
    ]
    assert len(examples) == 30
    own_the_examples(mine.database_url)
    locations = {}
    for example in examples:
        # GS1's sensor examples misspell one bizStep URI (Bizstep-): proceed past those two.
        behaviour = "proceed" if example.name == "SensorDataExamples.xml" else "rollback"
        response = world.call(
            "POST",
            "/epcis/capture",
            "maker",
            content=example.read_bytes(),
            headers={"Content-Type": "application/xml", "GS1-Capture-Error-Behaviour": behaviour},
        )
        assert response.status_code == 202, (example.name, response.text)
        locations[example.name] = response.headers["Location"]
    assert work_all(mine.database_url) == len(examples)
    event_ids = set()
    for name, location in locations.items():
        job = world.get(location, "maker").json()
        assert job["running"] is False, name
        if name == "SensorDataExamples.xml":
            assert [e["index"] for e in job["errors"]] == [12, 13], job["errors"]
        else:
            assert (job["success"], job["errors"]) == (True, []), (name, job)
        event_ids |= {event["eventID"] for event in job["events"]}
    assert len(event_ids) > 40
    for event_id in sorted(event_ids):
        found = world.get("/epcis/events", "maker", params={"EQ_eventID": event_id})
        assert found.status_code == 200, found.text
        listed = found.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert len(listed) == 1, event_id


def test_an_xml_payload_that_is_not_epcis_is_refused_400_and_kept(world: Api) -> None:
    response = world.call(
        "POST",
        "/epcis/capture",
        "maker",
        content=b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
        headers={"Content-Type": "application/xml"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_xml"


def test_a_job_records_an_error_declaration_only_from_a_party_entitled_to_it(
    world: Api, mine: SeededWorld
) -> None:
    event = make_event(biz_step="inspecting", disposition="conformant")
    assert job_of(world, post_capture(world, document(event)))["running"] is True
    work_all(mine.database_url)
    declared = {
        **event,
        "errorDeclaration": {"declarationTime": "2026-12-01T00:00:00Z", "reason": "incorrect_data"},
    }
    # Another organisation's key, rollback (the default): refused once judged, nothing kept.
    refused = post_capture(world, document(declared), "rival")
    work_all(mine.database_url)
    job = world.get(refused.headers["Location"], "rival").json()
    assert (job["success"], job["events"]) == (False, [])
    assert [error["code"] for error in job["errors"]] == ["not_entitled_to_declare"]
    with psycopg.connect(mine.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM error_declarations").fetchone() == (0,)
    # The party whose event it is: recorded, answered as such.
    recorded = post_capture(world, document(declared))
    work_all(mine.database_url)
    job = world.get(recorded.headers["Location"], "maker").json()
    assert (job["success"], job["errors"]) == (True, [])
    assert [e["status"] for e in job["events"]] == ["error_declared"]
    assert job["events"][0]["eventID"] == hash_id(event)
    with psycopg.connect(mine.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM error_declarations").fetchone() == (1,)
