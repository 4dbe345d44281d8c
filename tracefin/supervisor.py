"""Supervising `tracefin` worker processes: start, restart with backoff, stop in order."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# A worker that dies sooner than this after its start is restarted with a growing delay.
_HEALTHY_AFTER_S = 10.0
_MAX_RESTART_DELAY_S = 30.0


class UpError(Exception):
    """Something `up` cannot do; the message is one sentence saying what to do about it."""


Say = Callable[[str], None]


def say_to(stream: IO[str]) -> Say:
    def say(text: str) -> None:
        print(f"[tracefin] {text}", file=stream, flush=True)

    return say


@dataclass
class Endpoints:
    database_url: str
    mqtt_url: str
    chain_rpc_url: str

    def env(self) -> dict[str, str]:
        return {
            "TRACEFIN_DATABASE_URL": self.database_url,
            "TRACEFIN_MQTT_URL": self.mqtt_url,
            "TRACEFIN_CHAIN_RPC_URL": self.chain_rpc_url,
        }


@dataclass
class Teardown:
    """What was started, stopped in reverse order."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, name: str, stop: Callable[[], None]) -> None:
        self.steps.append((name, stop))

    def run(self, say: Say) -> None:
        while self.steps:
            name, stop = self.steps.pop()
            try:
                stop()
                say(f"stopped {name}")
            except Exception as exc:  # keep stopping the rest
                say(f"could not stop {name} cleanly: {exc}")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if `up` itself dies, so no worker is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    """A `tracefin` subcommand run as a supervised child process, its output in a log file."""

    name: str
    args: list[str]
    restart: bool = True
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0

    def start(self, env: dict[str, str], logs: Path | None) -> None:
        """Start it; its output goes to `logs/{name}.log`, or with no `logs` to the parent's own
        stdout and stderr (`tracefin ingest --processes N`, whose output a service manager
        collects)."""
        log = (logs / f"{self.name}.log").open("ab") if logs is not None else None
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and argv
            [sys.executable, "-m", "tracefin.cli", *self.args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            # Its own session: Ctrl-C reaches the supervisor alone, which then stops workers in
            # order.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        if log is not None:
            log.close()
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Supervisor:
    """Keeps the workers running: one that dies is said so and restarted, with backoff."""

    def __init__(self, env: dict[str, str], logs: Path | None, say: Say) -> None:
        self._env = env
        self._logs = logs
        self._say = say
        self.workers: list[Worker] = []

    def start(self, worker: Worker) -> Worker:
        worker.start(self._env, self._logs)
        self.workers.append(worker)
        assert worker.process is not None
        where = f", log in {self._logs}" if self._logs is not None else ""
        self._say(f"{worker.name:<10} started (pid {worker.process.pid}){where}")
        return worker

    def check(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            if not worker.restart:
                continue
            if worker.next_start == 0.0:
                lived = now - worker.started_at
                delay = (
                    0.0
                    if lived >= _HEALTHY_AFTER_S
                    else min(_MAX_RESTART_DELAY_S, 2.0 ** min(worker.restarts, 5))
                )
                worker.next_start = now + delay
                self._say(
                    f"{worker.name:<10} exited with status {process.returncode} after"
                    f" {lived:.0f} s; restarting{f' in {delay:.0f} s' if delay else ''}"
                    + (f" (see {self._logs / (worker.name + '.log')})" if self._logs else "")
                )
            if now >= worker.next_start:
                worker.restarts += 1
                worker.next_start = 0.0
                worker.start(self._env, self._logs)
                assert worker.process is not None
                self._say(f"{worker.name:<10} restarted (pid {worker.process.pid})")

    def stop_all(self) -> None:
        for worker in reversed(self.workers):
            if worker.process is not None and worker.process.poll() is None:
                worker.stop()
                self._say(f"stopped {worker.name}")
