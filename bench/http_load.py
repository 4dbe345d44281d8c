"""HTTP load the API benchmarks share: `tracefin api` as a process, wrk, an open-loop generator.

Saturation is wrk's (a C load generator, so the generator is not the bottleneck); latency at a
fixed arrival rate comes from the small asyncio generator below, run in its own process, which
times every request from its *scheduled* send time, so a slow response does not hide the
requests queued behind it (no coordinated omission). Debian has wrk but not wrk2.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TIMEOUT_S = 10  # the open-loop generator gives up on a request after this long
RATE_PER_MINUTE = 1_000_000_000  # the public rate limit, raised so the limiter never answers 429
WRK_SCRIPT = """\
local paths = {%(paths)s}
local headers = %(headers)s
local counter = 0
request = function()
  counter = counter %% #paths + 1
  return wrk.format("GET", paths[counter], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d,'
    .. ' "read": %%d, "write": %%d, "status": %%d, "timeout": %%d,'
    .. ' "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(
            "wrk is not installed: `apt-get install -y wrk` (Debian), then run this again"
        )
    return wrk


def start_api(database_url: str, rpc_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`tracefin api` (one uvicorn worker) with the public rate limit raised out of the way."""
    env = {
        **os.environ,
        "TRACEFIN_DATABASE_URL": database_url,
        "TRACEFIN_CHAIN_RPC_URL": rpc_url,
        "TRACEFIN_API_HOST": "127.0.0.1",
        "TRACEFIN_API_PORT": str(port),
        "TRACEFIN_API_PUBLIC_RATE_PER_MINUTE": str(RATE_PER_MINUTE),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tracefin.cli", "api"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], grace: float = 15) -> bool:
    """SIGTERM (uvicorn's graceful shutdown), SIGKILL after `grace` s; True if it was killed."""
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True
    return False


def get(
    url: str, timeout: float = 5, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SystemExit(f"tracefin api exited ({process.returncode}):\n{log.read_text()}")
        try:
            if get(f"{base}/healthz", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"tracefin api not healthy after {timeout:.0f}s:\n{log.read_text()}")
        time.sleep(0.1)


def run_wrk(
    wrk: str,
    base: str,
    paths: list[str],
    seconds: int,
    connections: int,
    folder: Path,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """wrk -t2 over `paths` in turn for `seconds`: requests, req/s, errors, p50/p99 in µs."""
    script = folder / "rotate.lua"
    sent = {"Accept": "application/json", **(headers or {})}
    lua_headers = "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in sent.items())
    script.write_text(
        WRK_SCRIPT
        % {"paths": ", ".join(json.dumps(path) for path in paths), "headers": lua_headers + "}"}
    )
    done = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base + paths[0]],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRKJSON "))
    figures: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["errors"] = sum(
        figures[key] for key in ("connect", "read", "write", "status", "timeout")
    )
    return figures


def wrk_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """The part of a wrk run the results files keep."""
    return {
        "req_per_s": round(figures["rps"], 1),
        "requests": figures["requests"],
        "errors": figures["errors"],
        "p50_ms": round(figures["p50_us"] / 1000, 2),
        "p99_ms": round(figures["p99_us"] / 1000, 2),
    }


# --- open-loop generator (runs in its own process: `bench/http_load.py SPEC`) ---


async def _open_loop(
    host: str,
    port: int,
    paths: list[str],
    rate: float,
    seconds: float,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{extra}\r\n"
        ).encode()
        for path in paths
    ]
    # Kept-alive connections with their last use; uvicorn closes one idle for 5 s.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    latencies: list[float] = []
    failures: dict[str, int] = {}
    opened = 0

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        nonlocal opened
        opened += 1
        return await asyncio.open_connection(host, port)

    async def reuse_or_open() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while idle:
            reader, writer, used = idle.pop()
            if not reader.at_eof() and loop.time() - used < 4:
                return reader, writer
            writer.close()
        return await connection()

    async def one(request: bytes, scheduled: float) -> None:
        reader, writer = await reuse_or_open()
        try:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
            status = int(head[9:12])
            length = 0
            keep = True
            for header in head.split(b"\r\n")[1:]:
                name, _, value = header.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"connection" and value.strip().lower() == b"close":
                    keep = False
            await asyncio.wait_for(reader.readexactly(length), TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            writer.close()
            return
        latencies.append(loop.time() - scheduled)
        if status != 200:
            failures[f"status {status}"] = failures.get(f"status {status}", 0) + 1
        if keep:
            idle.append((reader, writer, loop.time()))
        else:
            writer.close()

    idle.extend([(*await connection(), loop.time()) for _ in range(16)])
    total = int(rate * seconds)
    began = loop.time() + 0.05
    tasks = []
    for index in range(total):
        scheduled = began + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[index % len(requests)], scheduled)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - began
    for _, writer, _ in idle:
        writer.close()
    answered = len(latencies)
    # A request that failed or timed out counts as slower than any answer.
    ranked = sorted(latencies) + [math.inf] * (total - answered)

    def pct(q: float) -> float | None:
        value = ranked[min(len(ranked) - 1, int(q * len(ranked)))]
        return None if math.isinf(value) else value * 1000

    return {
        "scheduled": total,
        "answered": answered,
        "achieved_rps": answered / elapsed,
        "connections_opened": opened,
        "failures": failures,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
    }


def ms(value: float | None) -> str:
    return f"{value:.1f} ms" if value is not None else f"> {TIMEOUT_S} s (timed out)"


def rounded(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def run_open_loop(
    port: int,
    paths: list[str],
    rate: float,
    seconds: float,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`rate` requests/s over `paths` in turn for `seconds`, from a separate process."""
    spec = json.dumps(
        {"port": port, "paths": paths, "rate": rate, "seconds": seconds, "headers": headers or {}}
    )
    done = subprocess.run(
        [sys.executable, __file__, spec],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    print(
        json.dumps(
            asyncio.run(
                _open_loop(
                    "127.0.0.1",
                    given["port"],
                    given["paths"],
                    given["rate"],
                    given["seconds"],
                    given["headers"],
                )
            )
        )
    )
