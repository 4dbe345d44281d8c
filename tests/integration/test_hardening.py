"""Hostile clients against the real processes (issue 17): one request or one file never crashes
them, a forged X-Forwarded-For dodges no limit, a slow client holds no connection for long."""

from __future__ import annotations

import secrets
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.config import ApiConfig
from tests.support.cli import tracefin
from tests.support.postgres import admin_url
from tests.support.processes import ApiProcess
from tracefin.schema import scratch_database

pytestmark = pytest.mark.integration
DEEP = b"[" * 80_000  # 80 000 nested arrays, 80 KB


def test_the_standard_parser_crashes_on_deep_json_once_web3_is_imported() -> None:
    """The attack itself: json.loads after importing web3 (py_ecc raises the recursion limit)
    kills the process with a signal, not a RecursionError."""
    crash = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, web3, sys; json.loads(sys.stdin.buffer.read())",
        ],
        input=DEEP,
        capture_output=True,
        timeout=60,
    )
    assert crash.returncode < 0, crash  # killed by a signal (SIGSEGV)


def test_every_tracefin_process_undoes_py_ecc_s_recursion_limit() -> None:
    """Defence in depth behind the guarded reader: in a process started the way `tracefin`
    starts (keep_recursion_limit first), the same parse is a RecursionError, not a crash."""
    survived = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys\n"
            "from tracefin.cli import keep_recursion_limit\n"
            "keep_recursion_limit()\n"
            "import web3\n"
            "try:\n"
            "    json.loads(sys.stdin.buffer.read())\n"
            "except RecursionError:\n"
            "    print(sys.getrecursionlimit())\n",
        ],
        input=DEEP,
        capture_output=True,
        timeout=60,
    )
    assert (survived.returncode, survived.stdout.strip()) == (0, b"1000"), survived


# The rig's limits, small enough that a test reaches them at once.
RATE_PER_MINUTE = 30
METRICS_TOKEN = secrets.token_urlsafe(32)
# The rig's one trusted proxy: a second loopback address (Linux routes all of 127/8 to lo, so a
# client socket may bind it). 127.0.0.1, which uvicorn trusts unless told otherwise, is not.
TRUSTED_PROXY = "127.0.0.2"


@pytest.fixture(scope="module")
def api_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tracefin api` under uvicorn on a free port: the process a client would reach, with
    TRUSTED_PROXY as its trusted proxy, 1 s to send headers or a body, a small public rate limit
    and a metrics token. One per module: the tests below share it (and their rate buckets
    are kept apart by the client address each forwards or connects from)."""
    with scratch_database(admin_url(), "tracefin_test") as database_url:
        api = ApiProcess(
            database_url,
            tmp_path_factory.mktemp("api"),
            api_public_rate_per_minute=str(RATE_PER_MINUTE),
            api_trusted_proxies=TRUSTED_PROXY,
            api_header_timeout_s="1",
            api_body_timeout_s="1",
            api_metrics_token=METRICS_TOKEN,
        )
        api.start()
        url = api.url
        yield url
        api.terminate()


@pytest.mark.parametrize("route", ["/v1/verify", "/v1/products", "/v1/lines"])
def test_one_deep_json_request_is_refused_and_the_api_lives_on(
    api_process: str, route: str
) -> None:
    """Unauthenticated (/v1/verify) or not, a deeply nested body is a 400 problem before any
    route parses it, and the process serves the next request."""
    answer = httpx.post(
        f"{api_process}{route}",
        content=DEEP,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "json_too_deep"
    assert httpx.get(f"{api_process}/healthz", timeout=5).status_code == 200


# --- rate limits and who the client is (issue 17, item 6) ---------------------------------------


def _until_limited(client: httpx.Client, url: str, forwarded_for: str | None = None) -> int:
    """Requests to a public route until one is refused 429: how many were answered before.
    The limit refills at RATE_PER_MINUTE / 60 a second, so 10 x the burst is never all served."""
    for served in range(10 * RATE_PER_MINUTE):
        headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
        if forwarded_for == "random":
            headers["X-Forwarded-For"] = f"198.51.100.{secrets.randbelow(250)}"
        answer = client.get(f"{url}/v1/proofs/0", headers=headers)
        if answer.status_code == 429:
            assert answer.json()["code"] == "rate_limited"
            return served
    raise AssertionError(f"never limited after {10 * RATE_PER_MINUTE} requests")


def test_a_forged_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_limit(
    api_process: str,
) -> None:
    """Each request claims another client; the peer (127.0.0.1, which uvicorn trusted by
    default) is no proxy of ours, so it is one client."""
    with httpx.Client(timeout=10) as peer:
        assert _until_limited(peer, api_process, "random") <= RATE_PER_MINUTE + 5


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    api_process: str,
) -> None:
    transport = httpx.HTTPTransport(local_address=TRUSTED_PROXY)
    with httpx.Client(transport=transport, timeout=10) as proxy:
        _until_limited(proxy, api_process, "203.0.113.7")
        # The client the proxy names, not the proxy, was limited: another is served.
        other = proxy.get(f"{api_process}/v1/proofs/0", headers={"X-Forwarded-For": "203.0.113.8"})
        assert other.status_code != 429, other.text
        # A client that prepends a forged address is still known by the one our proxy added.
        forged = proxy.get(
            f"{api_process}/v1/proofs/0",
            headers={"X-Forwarded-For": "192.0.2.99, 203.0.113.7"},
        )
        assert forged.status_code == 429, forged.text


# --- slow clients: headers and bodies have deadlines ----------------------------------------------


def _connect(url: str) -> socket.socket:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert port is not None
    connection = socket.create_connection((host, port))
    # A safety net, not a measure: the server's own deadline (1 s) closes it long before.
    connection.settimeout(30)
    return connection


def _read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout raises)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_a_client_that_never_finishes_its_headers_is_cut_off(api_process: str) -> None:
    """Slowloris: many connections that sent half their headers, or nothing, each closed by
    the server with a 408 problem once the header deadline passes."""
    connections = [_connect(api_process) for _ in range(20)]
    for index, connection in enumerate(connections):
        if index % 2 == 0:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: tracefin\r\nX-Slow: ")
    for connection in connections:
        with connection:
            answer = _read_until_closed(connection)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"application/problem+json" in answer
            assert b'"code":"request_timeout"' in answer


def test_a_kept_alive_connection_that_dribbles_its_next_headers_is_cut_off(
    api_process: str,
) -> None:
    """After one full exchange (the keep-alive timer is disarmed by the next request's first
    byte), the second request's headers have their deadline too."""
    with _connect(api_process) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: tracefin\r\n\r\n")
        first = b""
        while b'{"status":"ok"}' not in first:
            first += connection.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        answer = _read_until_closed(connection)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


@pytest.mark.parametrize("route", ["/v1/verify", "/v1/capture"])
def test_a_client_that_never_finishes_its_body_is_answered_408_and_closed(
    api_process: str, route: str
) -> None:
    """Headers, then half the body they announce, then nothing: the route never sees it (nor
    holds a database connection for it), and the connection is closed."""
    with _connect(api_process) as connection:
        connection.sendall(
            f"POST {route} HTTP/1.1\r\nHost: tracefin\r\nContent-Type: application/json\r\n"
            "Authorization: Bearer not-a-key\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"version": 1, '
        )
        answer = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code":"request_timeout"' in answer
    assert httpx.get(f"{api_process}/healthz", timeout=5).status_code == 200


def test_a_body_dribbled_after_the_answer_does_not_keep_the_connection(api_process: str) -> None:
    """A route that reads no body answers at once; a client that then sends the body it
    announced a byte at a time (each byte used to re-arm uvicorn's keep-alive timer) is cut
    off before it is done."""
    with _connect(api_process) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: tracefin\r\nContent-Length: 100\r\n\r\n"
        )
        answer, closed_early = _dribble(connection, b" " * 100)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert closed_early, "the server waited for the whole dribbled body"


def _dribble(connection: socket.socket, body: bytes) -> tuple[bytes, bool]:
    """`body` sent a byte at a time, five a second, reading whatever the server answers
    meanwhile: what it answered, and whether it closed the connection before the last byte."""
    answer = b""
    for byte in body:
        while select.select([connection], [], [], 0)[0]:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                return answer, True
            if not chunk:
                return answer, True
            answer += chunk
        try:
            connection.sendall(bytes([byte]))
        except OSError:  # reset: it closed while the byte was on its way
            return answer, True
        time.sleep(0.2)  # pacing the dribble, not measuring anything
    return answer, False


# --- operations routes ------------------------------------------------------------------------


def test_metrics_need_the_metrics_token(api_process: str) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
    ):
        refused = httpx.get(f"{api_process}/metrics", headers=headers, timeout=10)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "invalid_metrics_token"
        assert "tracefin_http_requests" not in refused.text
    served = httpx.get(
        f"{api_process}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        timeout=10,
    )
    assert served.status_code == 200, served.text
    assert "tracefin_http_requests_total" in served.text


def test_without_a_metrics_token_only_loopback_clients_read_the_metrics(
    database_url: str,
) -> None:
    """Outside production the token may be unset: then /metrics is for this machine only (a
    client a trusted proxy forwards is known by its own address, not the proxy's)."""
    with ConnectionPool(database_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        app = create_app(ApiConfig(), pool)
        for client, status in (
            (("127.0.0.1", 40000), 200),
            (("::1", 40000), 200),
            (("203.0.113.9", 40000), 403),
            (("10.0.0.8", 40000), 403),
            (("testclient", 40000), 403),
        ):
            answer = TestClient(app, client=client).get("/metrics")
            assert answer.status_code == status, (client, answer.text)
            if status == 403:
                assert answer.json()["code"] == "metrics_loopback_only"
                assert "tracefin_http" not in answer.text


def test_a_deep_bundle_file_is_refused_by_the_cli(database_url: str, tmp_path: Path) -> None:
    bundle = tmp_path / "deep.json"
    bundle.write_bytes(DEEP)
    result = tracefin(database_url, "verify", "--bundle", str(bundle))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "json_too_deep" in result.stderr
