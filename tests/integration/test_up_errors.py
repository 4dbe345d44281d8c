"""`tracefin up` refuses what it cannot do in one sentence saying what to do, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracefin.embedded import free_port
from tracefin.settings import Settings
from tracefin.supervisor import Teardown, UpError
from tracefin.up import find_chain

pytestmark = pytest.mark.integration


def _up(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TRACEFIN_DATABASE_URL", "TRACEFIN_MQTT_URL", "TRACEFIN_CHAIN_RPC_URL")
    }
    env |= {"TRACEFIN_HOME": str(tmp_path / "home"), **settings}
    return subprocess.run(
        [sys.executable, "-m", "tracefin.cli", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("tracefin:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_taken_api_port_is_one_sentence(tmp_path: Path, taken_port: int) -> None:
    message = _one_sentence(_up(tmp_path, TRACEFIN_API_PORT=str(taken_port)))
    assert f"port {taken_port} on 127.0.0.1 is taken" in message
    assert "TRACEFIN_API_PORT" in message
    assert not (tmp_path / "home" / "pgdata").exists(), "nothing may start before the refusal"


def test_an_unreachable_database_is_one_sentence(tmp_path: Path) -> None:
    unused = free_port()
    message = _one_sentence(
        _up(
            tmp_path,
            TRACEFIN_API_PORT=str(free_port()),
            TRACEFIN_DATABASE_URL=f"postgresql://postgres:secret-pw@127.0.0.1:{unused}/nowhere",
        )
    )
    assert (
        f"cannot reach PostgreSQL at TRACEFIN_DATABASE_URL (127.0.0.1:{unused}/nowhere" in message
    )
    assert "secret-pw" not in message


def test_an_unreachable_broker_is_one_sentence(tmp_path: Path, database_url: str) -> None:
    unused = free_port()
    message = _one_sentence(
        _up(
            tmp_path,
            TRACEFIN_API_PORT=str(free_port()),
            TRACEFIN_DATABASE_URL=database_url,
            TRACEFIN_MQTT_URL=f"mqtt://127.0.0.1:{unused}",
        )
    )
    assert f"nothing answers at TRACEFIN_MQTT_URL (127.0.0.1:{unused})" in message


def test_an_unreachable_chain_is_one_sentence(
    tmp_path: Path, database_url: str, mqtt_url: str
) -> None:
    unused = free_port()
    message = _one_sentence(
        _up(
            tmp_path,
            TRACEFIN_API_PORT=str(free_port()),
            TRACEFIN_DATABASE_URL=database_url,
            TRACEFIN_MQTT_URL=mqtt_url,
            TRACEFIN_CHAIN_RPC_URL=f"http://127.0.0.1:{unused}",
        )
    )
    assert f"no chain answers at TRACEFIN_CHAIN_RPC_URL (http://127.0.0.1:{unused})" in message


def test_missing_node_and_anvil_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tracefin.embedded.ANVIL_BINARY", tmp_path / "no-anvil")
    monkeypatch.setenv("PATH", str(tmp_path))  # neither node nor anvil on it
    with pytest.raises(UpError, match=r"Node\.js is not installed: install Node\.js 20"):
        find_chain(Settings(_env_file=None), tmp_path, Teardown(), lambda _text: None)  # type: ignore[call-arg]
