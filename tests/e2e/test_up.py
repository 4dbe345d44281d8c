"""`tracefin up --demo` end to end: embedded services, workers, a product page, a verified proof."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tracefin.embedded import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READY_WITHIN_S = 240


def _get(url: str, accept: str = "application/json") -> object:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: object) -> object:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _ours(home: Path) -> list[psutil.Process]:
    """Every live process started for this `up`: its workers and services all name `home`
    or are children of it."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ = process.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(home) in cmdline or environ.get("TRACEFIN_HOME") == str(home):
            found.append(process)
    return found


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under tmp_path: pytest keeps its base 0700, and as root pgserver runs PostgreSQL as
    # an unprivileged user that must reach the data directory.
    folder = Path(tempfile.mkdtemp(prefix="tracefin-up-"))
    folder.chmod(0o755)
    yield folder / "home"
    shutil.rmtree(folder, ignore_errors=True)


def test_up_demo_serves_an_anchored_verifiable_page_and_stops_cleanly(
    tmp_path: Path, home: Path
) -> None:
    api_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TRACEFIN_DATABASE_URL", "TRACEFIN_MQTT_URL", "TRACEFIN_CHAIN_RPC_URL")
    }
    env |= {"TRACEFIN_HOME": str(home), "TRACEFIN_API_PORT": str(api_port)}
    output = (tmp_path / "up.out").open("w+")
    up = subprocess.Popen(
        [sys.executable, "-m", "tracefin.cli", "up", "--demo"],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        page_url = None
        while page_url is None:
            text = (tmp_path / "up.out").read_text()
            found = re.search(r"^Product page:\s+(\S+)$", text, re.MULTILINE)
            page_url = found.group(1) if found else None
            assert up.poll() is None, f"tracefin up exited early:\n{text}"
            assert time.monotonic() < deadline, f"no product page within the limit:\n{text}"
            time.sleep(0.5)
        base = page_url.split("/01/", 1)[0]
        assert base == f"http://127.0.0.1:{api_port}"
        page = _get(page_url)
        assert isinstance(page, dict)
        anchored = [e for e in page["events"] if e["verification"]["state"] == "anchored"]
        assert anchored, page
        bundle = anchored[0]["verification"]["proof"]
        assert bundle["status"] == "anchored"
        assert _post(f"{base}/v1/verify", bundle) == {"valid": True, "reasons": []}
        browser = urllib.request.Request(page_url, headers={"Accept": "text/html"})
        html = urllib.request.urlopen(browser, timeout=10).read().decode()
        assert 'class="event anchored ' in html  # then its evidence: counts or unattested
        assert _ours(home), "no process of this run was found: the check below proves nothing"
        text = (tmp_path / "up.out").read_text()
        # Every worker runs, the capture-job worker (POST /epcis/capture) and the subscription
        # worker (webhooks of named queries) among them.
        for worker in ("ingest", "anchor", "finance", "capture", "webhooks", "api"):
            assert re.search(rf"^\[tracefin\] {worker} +started \(pid \d+\)", text, re.M), text
        # A worker that dies is said so and restarted.
        anchor_pid = re.search(r"anchor +started \(pid (\d+)\)", text)
        assert anchor_pid is not None, text
        os.kill(int(anchor_pid.group(1)), signal.SIGKILL)
        while "anchor     restarted" not in (tmp_path / "up.out").read_text():
            assert time.monotonic() < deadline + 60, (tmp_path / "up.out").read_text()
            time.sleep(0.2)
        assert "anchor     exited with status -9" in (tmp_path / "up.out").read_text()
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(90)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    text = (tmp_path / "up.out").read_text()
    assert code == 0, text
    assert "stopped postgres" in text, text
    assert "Traceback" not in text, text
    leftovers = [f"{p.pid} {' '.join(p.cmdline())}" for p in _ours(home) if p.is_running()]
    assert leftovers == [], leftovers
