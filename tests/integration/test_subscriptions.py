"""Named queries and subscriptions (EPCIS 2.0 REST binding, issue 16): /epcis/queries, a named
query's events, a WebSocket stream (real uvicorn, the `websockets` client) and webhook
subscriptions (real local HTTP receivers, the delivery worker in process or as the
`tracefin subscription-worker` process, killed). Real PostgreSQL; log positions are given by
`log_store.assign_positions`, as the anchor leader gives them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import orjson
import psycopg
import pytest
import websockets

from epcis.event_hash import event_hash_digest, hash_id_from_digest
from epcis.query import parse_event_query
from epcis.subscriptions import POSITION_KEY, DestRefused
from ingest.capture import CaptureBatch, Origin
from ledger import log_store
from ledger.subscriptions import DeliveryConfig, DeliveryWorker, next_batch
from records import registry_store, subscription_store
from tests.support.api import Api, SeededWorld, app_in_thread, copy_of, serve
from tests.support.events import make_event, store_events
from tests.support.processes import WorkerProcess
from tracefin.embedded import free_port
from tracefin.processes.api import api_pool, build_app
from tracefin.processes.subscription_worker import render, webhook_sender
from tracefin.settings import Settings
from tracefin.simulate import DEVICES, signed_publications, sim_devices

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).parents[1] / "fixtures" / "epcis-2.0" / "EPCIS-JSON-Schema.json"
GS1_SCHEMA = jsonschema_rs.Draft7Validator(orjson.loads(SCHEMA.read_bytes()))


def valid(document: dict[str, Any]) -> dict[str, Any]:
    """`document`, once GS1's JSON Schema finds nothing wrong with it."""
    assert [error.message for error in GS1_SCHEMA.iter_errors(document)] == []
    return document


def shipping() -> dict[str, object]:
    return make_event(bizStep="shipping", disposition="in_transit", action="OBSERVE")


def events_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = document["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"
    ]
    return results


def hash_id(event: dict[str, object]) -> str:
    return hash_id_from_digest(event_hash_digest(event))


# ---- named queries -------------------------------------------------------------------------


def test_named_queries_are_created_listed_read_run_and_deleted(world: Api) -> None:
    body = {"name": "shipped", "query": {"EQ_bizStep": ["shipping"], "eventType": ["ObjectEvent"]}}
    made = world.call("POST", "/epcis/queries", "maker", json=body)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/epcis/queries/shipped"
    assert world.get("/epcis/queries", "maker").json() == [body]
    assert world.get("/epcis/queries/shipped", "maker").json() == [body]
    # Its events are what the same ad-hoc query answers.
    named = world.get("/epcis/queries/shipped/events", "maker")
    adhoc = world.get(
        "/epcis/events", "maker", params={"EQ_bizStep": "shipping", "eventType": "ObjectEvent"}
    )
    assert named.status_code == 200, named.text
    assert events_of(named.json()) == events_of(adhoc.json())
    assert len(events_of(named.json())) == 2
    assert named.json()["epcisBody"]["queryResults"]["queryName"] == "shipped"
    paged = world.get("/epcis/queries/shipped/events", "maker", params={"perPage": "1"})
    assert len(events_of(paged.json())) == 1
    assert 'rel="next"' in paged.headers["link"]
    options = world.client.options("/epcis/queries/shipped", headers=world.auth("maker"))
    assert (options.status_code, options.headers["allow"]) == (204, "OPTIONS, GET, DELETE")
    # The same name again: 409; the name is the org's own, so another org may take it.
    again = world.call("POST", "/epcis/queries", "maker", json=body)
    assert again.status_code == 409
    assert again.json()["type"] == "epcisException:ResourceAlreadyExistsException"
    assert world.call("POST", "/epcis/queries", "rival", json=body).status_code == 201
    deleted = world.call("DELETE", "/epcis/queries/shipped", "maker")
    assert deleted.status_code == 204
    assert world.get("/epcis/queries/shipped", "maker").status_code == 404
    assert world.get("/epcis/queries/shipped", "rival").status_code == 200


def test_named_query_refusals(world: Api) -> None:
    def post(body: object, who: str = "maker") -> httpx.Response:
        return world.call("POST", "/epcis/queries", who, json=body)

    for query in (
        {"EQ_bizstep": ["shipping"]},  # not a parameter of the standard
        {"GE_eventTime": "yesterday"},  # malformed
        {"EQ_bizStep": [1, 2]},  # not strings
        {"nextPageToken": "5"},  # paging is the request's
    ):
        refused = post({"name": "bad", "query": query})
        assert refused.status_code == 400, (query, refused.text)
        assert refused.json()["type"] == "epcisException:QueryParameterException"
    assert world.get("/epcis/queries", "maker").json() == []  # refused, never stored
    assert post({"name": "x", "query": {}}, "bank").status_code == 403  # financiers: no events
    unsupported = world.call(
        "POST", "/epcis/queries", "maker", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert unsupported.status_code == 415
    for name in (".", "..", "a/b", "", "x" * 300):  # "." and "..": clients resolve them away
        refused = post({"name": name, "query": {}})
        assert (refused.status_code, refused.json()["parameter"]) == (400, "name"), name
    assert post({"name": "mine", "query": {"EQ_bizStep": ["shipping"]}}).status_code == 201
    # Another org's query and subscriptions answer as unknown ones.
    for method, path in (
        ("GET", "/epcis/queries/mine"),
        ("DELETE", "/epcis/queries/mine"),
        ("GET", "/epcis/queries/mine/events"),
        ("GET", "/epcis/queries/mine/subscriptions"),
        ("OPTIONS", "/epcis/queries/mine/events"),
    ):
        assert world.call(method, path, "rival").status_code == 404, (method, path)
    assert world.get("/epcis/queries/mine", "maker").status_code == 200
    # A subscription parameter without a stream: the standard's subscription problem.
    streamless = world.get("/epcis/queries/mine/events", "maker", params={"stream": "true"})
    assert streamless.status_code == 400
    assert streamless.json()["type"] == "epcisException:SubscriptionControlsException"


def test_an_organisation_holds_named_queries_and_subscriptions_up_to_its_limits(
    mine: SeededWorld,
) -> None:
    """Each named query and subscription costs database work on every log move: an org may
    hold so many (403 limit_reached beyond), other orgs unaffected, and parallel requests
    cannot all slip under the limit."""
    with serve(
        mine,
        public_rate_per_minute=10_000,
        api_max_named_queries_per_org=3,
        api_max_subscriptions_per_org=2,
        subscription_loopback_dest=True,
    ) as world:

        def make(name: str, who: str = "maker") -> httpx.Response:
            return world.call(
                "POST",
                "/epcis/queries",
                who,
                json={"name": name, "query": {"EQ_bizStep": "shipping"}},
            )

        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(a.status_code for a in pool.map(make, [f"q{n}" for n in range(8)]))
        assert statuses == [201] * 3 + [403] * 5
        refused = make("one-more")
        assert (refused.status_code, refused.json()["code"], refused.json()["limit"]) == (
            403,
            "limit_reached",
            3,
        )
        assert make("q0", "rival").status_code == 201  # another org: its own count
        held = [q["name"] for q in world.get("/epcis/queries", "maker").json()]
        assert len(held) == 3
        assert world.call("DELETE", f"/epcis/queries/{held[0]}", "maker").status_code == 204
        assert make("after-delete").status_code == 201

        def subscribe(name: str) -> httpx.Response:
            return world.call(
                "POST",
                f"/epcis/queries/{name}/subscriptions",
                "maker",
                json={"dest": "http://127.0.0.1:9/hook", "stream": True},
            )

        assert subscribe(held[1]).status_code == 201
        assert subscribe(held[2]).status_code == 201
        over = subscribe("after-delete")  # counted over all the org's queries
        assert (over.status_code, over.json()["code"]) == (403, "limit_reached")
        count = world.conn.execute("SELECT count(*) FROM query_subscriptions").fetchone()
        assert count == (2,)


def test_an_organisation_opens_streams_up_to_its_limit(seeded_world: SeededWorld) -> None:
    with served_app(seeded_world, api_max_streams_per_org=2) as served:
        _named(served)
        url = served.base.replace("http://", "ws://") + "/epcis/queries/shipped/events?stream=true"
        auth = {"Authorization": f"Bearer {served.keys['maker']}"}

        async def scenario() -> None:
            async with (
                websockets.connect(url, additional_headers=auth),
                websockets.connect(url, additional_headers=auth),
            ):
                with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                    async with websockets.connect(url, additional_headers=auth):
                        pass
                problem = orjson.loads(refused.value.response.body or b"{}")
                assert (refused.value.response.status_code, problem["code"]) == (
                    403,
                    "limit_reached",
                )
            # Both closed: their places are free again (the server notices within a poll).
            deadline = time.monotonic() + 10
            while True:
                try:
                    async with websockets.connect(url, additional_headers=auth):
                        return
                except websockets.exceptions.InvalidStatus:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)

        asyncio.run(scenario())


def test_the_stream_cap_holds_across_api_processes_and_a_dead_one_s_streams_lapse(
    seeded_world: SeededWorld,
) -> None:
    """Two API apps (each its own pool and state, as two processes) on one database share an
    org's cap; streams whose lease lapsed (their process died without closing them) stop
    counting, and a stream found no longer counted is closed with 1013, try again later."""
    with served_apps(seeded_world, 2, api_max_streams_per_org=2) as (one, two):
        _named(one)
        path = "/epcis/queries/shipped/events?stream=true"
        urls = [served.base.replace("http://", "ws://") + path for served in (one, two)]
        auth = {"Authorization": f"Bearer {one.keys['maker']}"}

        def counted() -> int:
            with psycopg.connect(one.database_url, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM open_streams").fetchone()
            assert row is not None
            return int(row[0])

        async def scenario() -> None:
            async with (
                websockets.connect(urls[0], additional_headers=auth) as first,
                websockets.connect(urls[1], additional_headers=auth),
            ):
                assert counted() == 2
                with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                    async with websockets.connect(urls[1], additional_headers=auth):
                        pass
                problem = orjson.loads(refused.value.response.body or b"{}")
                assert (refused.value.response.status_code, problem["code"]) == (
                    403,
                    "limit_reached",
                )
                # As if the process holding both had died: their leases lapse. (A renewal, every
                # 10 s, may land between the lapse and the handshake: then lapse them again.)
                for _ in range(3):
                    with psycopg.connect(one.database_url, autocommit=True) as conn:
                        conn.execute("UPDATE open_streams SET lease_until = now() - interval '1 s'")
                    try:
                        third = await websockets.connect(urls[1], additional_headers=auth)
                        break
                    except websockets.exceptions.InvalidStatus:
                        continue
                else:
                    raise AssertionError("lapsed streams kept counting")
                async with third:
                    assert counted() == 1  # the lapsed two dropped, this one counted
                    # The first, still connected, finds itself uncounted at its next renewal.
                    with pytest.raises(websockets.exceptions.ConnectionClosed) as ended:
                        await asyncio.wait_for(first.recv(), timeout=30)
                    assert ended.value.rcvd is not None
                    assert ended.value.rcvd.code == 1013
            deadline = time.monotonic() + 10  # every stream closed: none counts
            while counted() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert counted() == 0

        asyncio.run(scenario())


def test_a_stream_is_counted_under_its_org_s_lock(mine: SeededWorld) -> None:
    """Count, then insert, under the org's advisory lock: an opening waits while another holds
    it (two API processes opening at once cannot both pass the cap)."""
    with psycopg.connect(mine.database_url, autocommit=True) as holder:
        first = holder.execute("SELECT min(id) FROM orgs").fetchone()
        assert first is not None
        org_id = int(first[0])
        holder.execute("BEGIN")
        subscription_store.open_stream(holder, org_id, 5, timedelta(seconds=30))  # holds it
        opened: list[int | None] = []
        opener = threading.Thread(
            target=lambda: opened.append(_open_one(mine.database_url, org_id)), daemon=True
        )
        opener.start()
        deadline = time.monotonic() + 30
        waiting = None
        while waiting is None and time.monotonic() < deadline:
            # This org's holdings lock in this database (two-key form: objsubid 2), not some
            # other test's advisory lock on the shared server.
            waiting = holder.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND objsubid = 2 AND objid = %s AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())",
                (org_id,),
            ).fetchone()
            time.sleep(0.01)
        assert waiting is not None, "the second opening did not wait for the org's lock"
        assert opened == []
        holder.execute("COMMIT")
        opener.join(30)
    assert len(opened) == 1
    assert opened[0] is not None


def test_processes_configured_with_different_caps_enforce_the_strictest(
    mine: SeededWorld,
) -> None:
    """Each stream records its process's cap: an opening is refused at the smallest of its own
    cap and those of the org's open streams; a stream of an earlier version (no cap) counts but
    sets none."""
    lease = timedelta(seconds=30)
    with psycopg.connect(mine.database_url, autocommit=True) as conn:
        first = conn.execute("SELECT min(id) FROM orgs").fetchone()
        assert first is not None
        org_id = int(first[0])
        conn.execute("DELETE FROM open_streams WHERE org_id = %s", (org_id,))

        def open_under(cap: int) -> int | None:
            return subscription_store.open_stream(conn, org_id, cap, lease).stream_id

        try:
            loose = open_under(5)
            assert loose is not None
            # Its own cap, 1, is reached, and the refusal says so.
            refused = subscription_store.open_stream(conn, org_id, 1, lease)
            assert refused == subscription_store.StreamOpening(None, 1)
            second = open_under(5)
            assert second is not None  # the loose process's cap, 5, is not
            for stream in (loose, second):
                subscription_store.close_stream(conn, stream)
            strict = open_under(1)
            assert strict is not None
            # The strict process's stream sets the cap at 1, and the refusal says so.
            refused = subscription_store.open_stream(conn, org_id, 5, lease)
            assert refused == subscription_store.StreamOpening(None, 1)
            subscription_store.close_stream(conn, strict)
            conn.execute(  # as a process of the version before caps were recorded
                "INSERT INTO open_streams (org_id, lease_until) VALUES (%s, now() + %s)",
                (org_id, lease),
            )
            assert open_under(5) is not None  # 1 held, and it set no cap
            assert open_under(2) is None  # 2 held: the one without a cap counts
            assert open_under(5) is not None
        finally:
            conn.execute("DELETE FROM open_streams WHERE org_id = %s", (org_id,))


def _open_one(database_url: str, org_id: int) -> int | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return subscription_store.open_stream(conn, org_id, 5, timedelta(seconds=30)).stream_id


@pytest.mark.parametrize(
    "dest",
    [
        "http://10.0.0.1/hook",  # private, and http
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "https://[::ffff:169.254.169.254]/",  # the same, inside IPv6
        "https://[fd00::1]/",  # unique local
        "https://100.64.0.1/",  # shared address space
        "https://0.0.0.0/",
        "https://127.0.0.1/hook",  # loopback, not allowed outside development
        "https://localhost/hook",
        "http://example.com/hook",  # http to anywhere
        "https://user:secret@example.com/hook",
        "https://metadata/",  # a single-label name
        "ftp://example.com/",
        "https://exa mple.com/",
    ],
)
def test_ssrf_destinations_are_refused(world: Api, dest: str) -> None:
    made = world.call(
        "POST", "/epcis/queries", "maker", json={"name": "q", "query": {"EQ_bizStep": "shipping"}}
    )
    assert made.status_code == 201
    refused = world.call(
        "POST",
        "/epcis/queries/q/subscriptions",
        "maker",
        json={"dest": dest, "stream": True, "signatureToken": "s3cret"},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "dest_refused"
    assert world.get("/epcis/queries/q/subscriptions", "maker").json() == []


def test_the_sender_refuses_a_non_public_address_when_sending() -> None:
    """Checked again at every delivery (a name may resolve elsewhere since): nothing is sent."""
    with receiver() as live:
        send = webhook_sender(loopback=False, timeout=2)
        with pytest.raises(DestRefused):
            send(f"http://127.0.0.1:{live.port}/hook", b"{}", {})
        with pytest.raises(DestRefused):
            send(f"https://localhost:{live.port}/hook", b"{}", {})
    assert live.bodies == []


def test_a_receiver_that_dribbles_its_answer_is_cut_off_at_the_timeout() -> None:
    """The timeout bounds the whole send, not each read: a receiver answering a byte at a time
    would otherwise hold the sender as long as it likes (and, past its lease, the next)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def dribble() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                for byte in b"HTTP/1.1 204 No Content\r\nX-Slow: " + b"a" * 40:
                    if stop.wait(0.25):
                        return
                    connection.sendall(bytes([byte]))

        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()
        send = webhook_sender(loopback=True, timeout=1)
        with pytest.raises(TimeoutError):
            send(f"http://127.0.0.1:{port}/hook", b"{}", {})
        stop.set()
        thread.join(5)


# ---- the log, followed by position -----------------------------------------------------------


def test_an_event_committed_late_with_a_lower_ingest_seq_is_still_delivered(
    fresh_database_url: str,
) -> None:
    """Concurrent ingest transactions commit out of ingest_seq order; a subscriber following
    the log by position still gets the event committed late, though a lower seq."""
    query = parse_event_query([])
    with (
        psycopg.connect(fresh_database_url, autocommit=True) as early,
        psycopg.connect(fresh_database_url, autocommit=True) as late,
        psycopg.connect(fresh_database_url, autocommit=True) as reader,
    ):
        store_events(reader, 1, "slow-ingest")  # registers both orgs' devices beforehand
        store_events(reader, 1, "fast-ingest")
        log_store.assign_positions(reader, 1000)
        position = subscription_store.log_end(reader)
        with early.transaction():
            first = capture_one(early, "slow-ingest")  # takes the lower seq, uncommitted
            second = capture_one(late, "fast-ingest")  # a higher seq, committed first
            seqs = dict(
                reader.execute(
                    "SELECT event_hash, ingest_seq FROM events WHERE event_hash = ANY(%s)",
                    ([first, second],),
                ).fetchall()
            )
            assert first not in seqs  # not visible yet
            log_store.assign_positions(reader, 1000)
            batch = next_batch(reader, query, None, position)
            assert batch is not None
            assert batch.page.digests == [second]
            position = batch.position
        # Committed now, with a lower ingest_seq than the one delivered.
        seq_of = dict(
            reader.execute(
                "SELECT event_hash, ingest_seq FROM events WHERE event_hash = ANY(%s)",
                ([first, second],),
            ).fetchall()
        )
        assert seq_of[first] < seq_of[second]
        log_store.assign_positions(reader, 1000)
        batch = next_batch(reader, query, None, position)
        assert batch is not None
        assert batch.page.digests == [first]


def capture_one(conn: psycopg.Connection[Any], org: str) -> bytes:
    """One signed event of `org`'s registered simulated devices, stored through capture (in
    the caller's transaction, if one is open)."""
    devices = registry_store.find_devices(conn, [(org, device) for device in DEVICES])
    now = datetime.now(UTC)
    publication = next(iter(signed_publications(sim_devices(org, org), range(1), now)))
    batch = CaptureBatch()
    result = batch.capture(
        Origin(publication.topic, now, publication.payload),
        devices[(org, publication.topic.split("/")[2])],
        max_payload_bytes=256 * 1024,
        max_future_skew=timedelta(minutes=10),
    )
    assert not result.refused, result.refused
    with conn.transaction():
        batch.store(conn)
    return batch.events[0].accepted.digest


# ---- a real server, positions given meanwhile ------------------------------------------------


@dataclass
class Served:
    base: str
    keys: dict[str, str]
    database_url: str

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def capture(self, event: dict[str, object], who: str = "maker") -> None:
        answer = self.call("POST", "/v1/capture", who, json=event)
        assert answer.status_code == 201, answer.text


@contextmanager
def positioner(database_url: str) -> Iterator[None]:
    """Gives queued events log positions every 50 ms, as the anchor leader does when idle."""
    stop = threading.Event()

    def run() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                log_store.assign_positions(conn, 10_000)
                stop.wait(0.05)

    thread = threading.Thread(target=run, name="positioner", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def served_apps(seeded_world: SeededWorld, count: int, **settings: Any) -> Iterator[list[Served]]:
    """The seeded world (a copy of its own) behind `count` instances of the real app under
    uvicorn, each on a free port with its own pool and state (as separate API processes have),
    with loopback webhooks allowed (development); `settings`: further Settings fields."""
    with copy_of(seeded_world) as mine, ExitStack() as stack:
        app_settings = Settings(
            _env_file=None,
            database_url=mine.database_url,  # type: ignore[call-arg]
            chain_rpc_url=mine.chain_rpc_url,
            api_public_rate_per_minute=10_000,
            subscription_loopback_dest=True,
            **settings,
        )
        served = []
        for _ in range(count):
            pool = stack.enter_context(api_pool(app_settings))
            app = stack.enter_context(app_in_thread(build_app(app_settings, pool), free_port()))
            served.append(Served(app.url, mine.keys, mine.database_url))
        stack.enter_context(positioner(mine.database_url))
        yield served


@contextmanager
def served_app(seeded_world: SeededWorld, **settings: Any) -> Iterator[Served]:
    """One app (`served_apps`)."""
    with served_apps(seeded_world, 1, **settings) as (served,):
        yield served


@pytest.fixture
def served(seeded_world: SeededWorld) -> Iterator[Served]:
    with served_app(seeded_world) as served:
        yield served


def _named(served: Served, name: str = "shipped") -> None:
    made = served.call(
        "POST", "/epcis/queries", "maker", json={"name": name, "query": {"EQ_bizStep": "shipping"}}
    )
    assert made.status_code == 201, made.text


def test_a_websocket_handshake_is_checked_as_an_http_request_is(served: Served) -> None:
    """The Guard middleware sees no WebSocket: NUL in the target is still a 400 problem (the
    database would fail on it), never an unhandled error."""
    base = served.base.replace("http://", "ws://")
    auth = {"Authorization": f"Bearer {served.keys['maker']}"}

    async def refused(path: str) -> int:
        with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
            async with websockets.connect(base + path, additional_headers=auth):
                pass
        return caught.value.response.status_code

    assert asyncio.run(refused("/epcis/queries/q%00/events?stream=true")) == 400
    assert asyncio.run(refused("/epcis/queries/unknown/events?stream=true")) == 404


def test_a_websocket_subscriber_gets_a_new_matching_event_at_once(served: Served) -> None:
    """How soon is printed, not asserted (a shared machine's timing is no test): the stream is
    woken by the log's NOTIFY, with a poll every second as the fallback."""
    _named(served)
    url = served.base.replace("http://", "ws://") + "/epcis/queries/shipped/events?stream=true"
    auth = {"Authorization": f"Bearer {served.keys['maker']}"}

    async def scenario() -> None:
        # A bad key: the handshake is refused with the API's problem (401), no stream.
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(url, additional_headers={"Authorization": "Bearer x"}):
                pass
        assert refused.value.response.status_code == 401
        problem = orjson.loads(refused.value.response.body or b"{}")
        assert (problem["status"], problem["type"]) == (401, "epcisException:SecurityException")
        async with websockets.connect(url, additional_headers=auth) as ws:
            commissioned, shipped = make_event(), shipping()
            await asyncio.to_thread(served.capture, commissioned)  # does not match
            await asyncio.to_thread(served.capture, shipped)
            began = time.monotonic()
            message = await asyncio.wait_for(ws.recv(), timeout=30)
            print(f"delivered {time.monotonic() - began:.3f} s after its capture returned")
            document = valid(orjson.loads(message))
            assert [e["eventID"] for e in events_of(document)] == [hash_id(shipped)]
            assert document["epcisBody"]["queryResults"]["queryName"] == "shipped"
            token = document["epcisBody"]["queryResults"][POSITION_KEY]
        # Disconnected: what is captured meanwhile is there on reconnecting with the position.
        missed = shipping()
        await asyncio.to_thread(served.capture, missed)
        await asyncio.to_thread(served.capture, make_event())
        resumed = f"{url}&nextPageToken={token}"
        async with websockets.connect(resumed, additional_headers=auth) as ws:
            document = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert [e["eventID"] for e in events_of(document)] == [hash_id(missed)]

    asyncio.run(scenario())


def test_a_stream_ends_when_its_key_is_revoked(served: Served) -> None:
    """The key is asked again at every step of a stream, so revoking it (`tracefin org
    revoke-key --reissue`) closes the stream (1008 invalid_api_key) before anything captured
    afterwards is sent on it."""
    _named(served)
    url = served.base.replace("http://", "ws://") + "/epcis/queries/shipped/events?stream=true"
    auth = {"Authorization": f"Bearer {served.keys['maker']}"}

    async def scenario() -> None:
        async with websockets.connect(url, additional_headers=auth) as ws:
            with psycopg.connect(served.database_url, autocommit=True) as conn:
                assert registry_store.revoke_keys(conn, "maker") == 1
                org = registry_store.get_org(conn, "maker")
                assert org is not None
                fresh = registry_store.issue_api_key(conn, org.id)
            new_key = Served(served.base, {"maker": fresh}, served.database_url)
            await asyncio.to_thread(new_key.capture, shipping())
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=30)  # the event, were it sent
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "invalid_api_key")

    asyncio.run(scenario())


# ---- webhooks ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    port: int
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    hang: bool = False


@contextmanager
def receiver(port: int | None = None, hang: bool = False) -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 that keeps what it is sent and answers 204 (or, with
    `hang`, never answers)."""
    got = Receiver(port or free_port(), hang=hang)
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if got.hang:
                release.wait(30)
                return
            got.bodies.append(body)
            got.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", got.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def wait_until(check: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def subscribe(
    served: Served, dest: str, token: str | None = "s3cret-token", name: str = "signatureToken"
) -> dict[str, Any]:
    body: dict[str, Any] = {"dest": dest, "stream": True}
    if token is not None:
        body[name] = token  # the standard's name, or `secret`, which GS1's schema requires
    made = served.call("POST", "/epcis/queries/shipped/subscriptions", "maker", json=body)
    assert made.status_code == 201, made.text
    shown: dict[str, Any] = made.json()
    assert "signatureToken" not in shown
    assert made.headers["location"].endswith(shown["subscriptionID"])
    return shown


@contextmanager
def delivery_worker(database_url: str, timeout: float = 2) -> Iterator[DeliveryWorker]:
    worker = DeliveryWorker(
        database_url,
        render,
        webhook_sender(loopback=True, timeout=timeout),
        DeliveryConfig(max_backoff=timedelta(seconds=1), senders=4),
    )
    thread = threading.Thread(target=worker.run, name="deliveries", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(15)


def received_ids(got: Receiver) -> list[str]:
    return [e["eventID"] for body in got.bodies for e in events_of(orjson.loads(body))]


def test_a_webhook_gets_the_event_after_its_receiver_was_down(served: Served) -> None:
    _named(served)
    port = free_port()  # nothing listens there yet: the receiver is down
    shown = subscribe(served, f"http://127.0.0.1:{port}/hook")
    shipped = shipping()
    served.capture(shipped)
    with (
        psycopg.connect(served.database_url, autocommit=True) as conn,
        delivery_worker(served.database_url),
    ):

        def failed() -> bool:
            row = conn.execute(
                "SELECT attempts FROM query_subscriptions WHERE subscription_id = %s",
                (shown["subscriptionID"],),
            ).fetchone()
            return row is not None and row[0] >= 1

        wait_until(failed, what="a failed attempt while the receiver is down")
        state = served.call(
            "GET", f"/epcis/queries/shipped/subscriptions/{shown['subscriptionID']}", "maker"
        ).json()
        assert state["status"] == "failing"
        assert "lastError" in state
        with receiver(port) as got:  # the receiver is back
            wait_until(lambda: bool(got.bodies), what="the delivery after the outage")
    assert hash_id(shipped) in received_ids(got)
    body, headers = got.bodies[0], got.headers[0]
    expected = "sha256=" + hmac.new(b"s3cret-token", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["gs1-signature"], expected)
    document = valid(orjson.loads(body))
    assert document["epcisBody"]["queryResults"]["subscriptionID"] == shown["subscriptionID"]


def test_a_dead_receiver_does_not_hold_up_a_live_one(served: Served) -> None:
    _named(served)
    with receiver(hang=True) as stuck, receiver() as live:
        subscribe(served, f"http://127.0.0.1:{stuck.port}/hook", name="secret")
        subscribe(served, f"http://127.0.0.1:{free_port()}/refused")
        subscribe(served, f"http://127.0.0.1:{live.port}/hook", token=None)
        shipped = shipping()
        served.capture(shipped)
        with delivery_worker(served.database_url, timeout=20):
            wait_until(lambda: hash_id(shipped) in received_ids(live), timeout=15)
            # The stuck receiver still holds its sender (20 s): the live one gets the next too.
            later = shipping()
            served.capture(later)
            wait_until(lambda: hash_id(later) in received_ids(live), timeout=15)
        assert "gs1-signature" not in live.headers[0]  # no token, no signature
        assert stuck.bodies == []


def test_a_killed_worker_resumes_without_losing_an_event(served: Served, tmp_path: Path) -> None:
    _named(served)
    with receiver() as got:
        subscribe(served, f"http://127.0.0.1:{got.port}/hook")
        worker = WorkerProcess(
            ["subscription-worker"],
            {
                "TRACEFIN_DATABASE_URL": served.database_url,
                "TRACEFIN_SUBSCRIPTION_LOOPBACK_DEST": "true",
            },
            tmp_path,
            "subscriptions",
        )
        worker.start()
        try:
            worker.wait_for_log("subscription worker running")
            first = shipping()
            served.capture(first)
            wait_until(lambda: hash_id(first) in received_ids(got), what="the first event")
            worker.kill()  # SIGKILL: no goodbye
            second = shipping()
            served.capture(second)
            worker.start()
            worker.wait_for_log("subscription worker running", timeout=60, count=2)
            wait_until(lambda: hash_id(second) in received_ids(got), 60, "after the restart")
        finally:
            worker.stop()
    assert {hash_id(first), hash_id(second)} <= set(received_ids(got))


def test_a_subscription_of_another_org_is_unknown(served: Served) -> None:
    _named(served)
    with receiver() as got:
        shown = subscribe(served, f"http://127.0.0.1:{got.port}/hook", name="secret")
    assert shown["signed"] is True  # `secret` names the token as signatureToken does
    path = f"/epcis/queries/shipped/subscriptions/{shown['subscriptionID']}"
    assert served.call("GET", path, "rival").status_code == 404
    assert served.call("DELETE", path, "rival").status_code == 404
    listed = served.call("GET", "/epcis/queries/shipped/subscriptions", "maker").json()
    assert [s["subscriptionID"] for s in listed] == [shown["subscriptionID"]]
    assert served.call("DELETE", path, "maker").status_code == 204
    assert served.call("GET", path, "maker").status_code == 404


def test_a_scheduled_subscription_reports_at_its_times(served: Served) -> None:
    _named(served)
    with receiver() as got:
        made = served.call(
            "POST",
            "/epcis/queries/shipped/subscriptions",
            "maker",
            json={
                "dest": f"http://127.0.0.1:{got.port}/hook",
                "schedule": {"second": "[0-59]"},  # every second
                "reportIfEmpty": True,
            },
        )
        assert made.status_code == 201, made.text
        assert made.json()["schedule"] == {"second": "[0-59]"}
        assert "stream" not in made.json()
        for body in (
            {"dest": f"http://127.0.0.1:{got.port}/", "schedule": {"hour": "25"}},
            {"dest": f"http://127.0.0.1:{got.port}/", "schedule": {"second": "0"}, "stream": True},
            {"dest": f"http://127.0.0.1:{got.port}/"},
            {"dest": f"http://127.0.0.1:{got.port}/", "stream": False},
        ):
            refused = served.call(
                "POST", "/epcis/queries/shipped/subscriptions", "maker", json=body
            )
            assert refused.status_code == 400, body
            assert refused.json()["type"] == "epcisException:SubscriptionControlsException"
        with delivery_worker(served.database_url):
            # Nothing new yet: reportIfEmpty sends an empty document at a scheduled time.
            wait_until(lambda: bool(got.bodies), what="the empty report")
            assert events_of(orjson.loads(got.bodies[0])) == []
            shipped = shipping()
            served.capture(shipped)
            wait_until(lambda: hash_id(shipped) in received_ids(got), what="the scheduled report")
