"""`tracefin` subcommands as child processes the tests start, kill and restart."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ingest.mqtt_link import end_session
from tracefin.embedded import free_port


class WorkerProcess:
    """A `tracefin` subcommand as a child process: started, killed and restarted at will."""

    def __init__(self, args: list[str], env: dict[str, str], log_dir: Path, name: str) -> None:
        self.args = args
        self.name = name
        self._env = {**os.environ, **env}
        self._log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self._log_dir / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracefin.cli", *self.args],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_for_log(self, text: str, timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.log_text().count(text) < count:
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {text!r} in its log:\n{self.log_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self._log_dir.glob(f"{self.name}-*.log"))
        )

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)


class IngestProcess(WorkerProcess):
    """`tracefin ingest` with a stable client id, so a restart resumes its MQTT session."""

    def __init__(self, database_url: str, mqtt_url: str, log_dir: Path, **settings: str) -> None:
        self.client_id = f"test-ingest-{secrets.token_hex(4)}"
        self.mqtt_url = mqtt_url
        env = {
            "TRACEFIN_DATABASE_URL": database_url,
            "TRACEFIN_MQTT_URL": mqtt_url,
            "TRACEFIN_INGEST_BATCH_MAX_WAIT_MS": "20",
            **{f"TRACEFIN_{key.upper()}": value for key, value in settings.items()},
        }
        super().__init__(["ingest", "--client-id", self.client_id], env, log_dir, self.client_id)

    def wait_until_subscribed(self, timeout: float = 30) -> None:
        self.wait_for_log("MQTT subscribed", timeout)

    def stop(self) -> None:
        """Kill the worker and end its persistent session.

        Mosquitto keeps dispatching a share of the group's messages to an offline member's
        session; a test's worker never comes back, so its session must not outlive the test.
        """
        super().stop()
        end_session(self.mqtt_url, self.client_id)


class ApiProcess(WorkerProcess):
    """`tracefin api` under uvicorn on a free port of 127.0.0.1: the server a client reaches."""

    def __init__(self, database_url: str, log_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "TRACEFIN_DATABASE_URL": database_url,
            "TRACEFIN_API_PORT": str(self.port),
            **{f"TRACEFIN_{key.upper()}": value for key, value in settings.items()},
        }
        super().__init__(["api"], env, log_dir, "api")

    def start(self) -> None:
        """Start it and wait until /healthz answers (30 s at most)."""
        super().start()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.alive, self.log_text()
            assert time.monotonic() < deadline, self.log_text()
            time.sleep(0.1)
