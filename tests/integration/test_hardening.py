"""Hostile input against the real processes (issue 17): one request or one file never crashes
them. Each test first shows the attack would have worked on the standard parser."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import tracefin
from tests.support.processes import WorkerProcess

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def api_process(fresh_database_url: str, tmp_path: Path) -> Iterator[str]:
    """`tracefin api` under uvicorn on a free port: the process a client would reach."""
    port = free_port()
    api = WorkerProcess(
        ["api"],
        {"TRACEFIN_DATABASE_URL": fresh_database_url, "TRACEFIN_API_PORT": str(port)},
        tmp_path,
        "api",
    )
    api.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert api.alive, api.log_text()
        assert time.monotonic() < deadline, api.log_text()
        time.sleep(0.1)
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


def test_a_deep_bundle_file_is_refused_by_the_cli(database_url: str, tmp_path: Path) -> None:
    bundle = tmp_path / "deep.json"
    bundle.write_bytes(DEEP)
    result = tracefin(database_url, "verify", "--bundle", str(bundle))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "json_too_deep" in result.stderr
