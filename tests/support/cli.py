"""The `tracefin` command line run as a child process, as an operator would run it."""

from __future__ import annotations

import os
import subprocess
import sys


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


def _run(
    args: tuple[str, ...], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracefin.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
