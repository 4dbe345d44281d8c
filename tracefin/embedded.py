"""Finding and starting local backing services (Mosquitto, anvil) for tests, demos and `up`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ANVIL_BINARY = PROJECT_ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
ANVIL_WRAPPER = PROJECT_ROOT / "node_modules/.bin/anvil"

# Broker settings the ingest path relies on: no per-client queue limit (the default of 1000
# silently drops QoS 1 messages for a slow or restarting worker) and persistence so queued
# messages survive a broker restart.
MOSQUITTO_CONF = """\
{user_line}listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data_dir}/
autosave_interval 5
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
set_tcp_nodelay true
log_dest file {data_dir}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


class ServiceUnavailable(Exception):
    """A service cannot be had on this machine; the message says what to install or set."""


@dataclass
class RunningService:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if process.poll() is not None:
            raise ServiceUnavailable(f"process exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"nothing listens on {host}:{port} after {timeout:.0f}s")
        time.sleep(0.05)


def mosquitto_config(port: int, data_dir: Path) -> str:
    """tracefin's broker settings for a private Mosquitto on 127.0.0.1:`port`."""
    # Started by root, Mosquitto drops to its own user, which cannot write our data directory:
    # persistence (queued QoS 1 messages surviving a restart) would silently not happen.
    user_line = "user root\n" if os.geteuid() == 0 else ""
    return MOSQUITTO_CONF.format(port=port, data_dir=data_dir, user_line=user_line)


def start_mosquitto(data_dir: Path, port: int | None = None) -> RunningService:
    """A private Mosquitto on 127.0.0.1 with tracefin's broker settings."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        raise ServiceUnavailable("mosquitto is not installed (apt-get install mosquitto)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    conf.write_text(mosquitto_config(port, data_dir))
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, process, timeout=10)
    return RunningService("mosquitto", f"mqtt://127.0.0.1:{port}", process)


def start_anvil(
    port: int | None = None, chain_id: int = 31337, state_file: Path | None = None
) -> RunningService:
    """anvil from node_modules, supervised as the real binary (SIGKILL reaches it).

    With `state_file` the chain is loaded from it at start and saved to it every few seconds
    and on exit, so a restarted devnet is the same chain (a killed one loses the last seconds).
    """
    binary = ANVIL_BINARY if ANVIL_BINARY.exists() else shutil.which("anvil")
    if binary is None:
        raise ServiceUnavailable("anvil not found: run `npm ci` in the project folder")
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--silent",
            *(["--state", str(state_file), "--state-interval", "5"] if state_file else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, process, timeout=30)
    return RunningService("anvil", f"http://127.0.0.1:{port}", process)
