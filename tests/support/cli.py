"""The `tracefin` command line run as a child process, as an operator would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def tracefin(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`tracefin ARGS` against `database_url`, in this process's environment otherwise."""
    return _run(args, {**os.environ, "TRACEFIN_DATABASE_URL": database_url}, timeout=60)


def run_audit_cli(database_url: str, chain_rpc_url: str) -> subprocess.CompletedProcess[str]:
    """`tracefin audit` with only these two settings (no stray TRACEFIN_* from the caller)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACEFIN_")},
        "TRACEFIN_DATABASE_URL": database_url,
        "TRACEFIN_CHAIN_RPC_URL": chain_rpc_url,
    }
    return _run(("audit",), env, timeout=120)


def tracefin_only(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`tracefin ARGS` with `env`'s settings and none of the caller's TRACEFIN_*, run in `cwd`
    (a folder without a .env: a verifier with nothing but what it is given)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACEFIN_")}
    return _run(args, {**clean, **env}, timeout=60, cwd=cwd)


def _run(
    args: tuple[str, ...], env: dict[str, str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracefin.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
