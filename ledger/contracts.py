"""Compiled contract artifacts (ABI + bytecode) built by `contracts/build.mjs`.

Pure: reads the committed JSON artifacts, no web3. The artifacts live in `contracts/artifacts/`
at the repository root, outside the `ledger` package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "artifacts"

TRACE_ANCHOR = "TraceAnchor"
PLEDGE_REGISTRY = "PledgeRegistry"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEX = re.compile(r"^0x(?:[0-9a-f]{2})+$")


class ArtifactError(Exception):
    """An artifact is missing or malformed; rebuild with `make contracts`."""


@dataclass(frozen=True)
class Artifact:
    """One deployable contract: its ABI and 0x-hex creation and runtime bytecode."""

    contract_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def load_artifact(name: str, artifacts_dir: Path = ARTIFACTS_DIR) -> Artifact:
    """The artifact of contract `name` (e.g. `TRACE_ANCHOR`), read from `artifacts_dir`."""
    if not _NAME.match(name):
        raise ArtifactError(f"not a contract name: {name!r}")
    path = artifacts_dir / f"{name}.json"
    try:
        raw: object = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"no artifact {path}; run `make contracts`") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    abi = raw.get("abi")
    if not isinstance(abi, list) or not all(isinstance(entry, dict) for entry in abi):
        raise ArtifactError(f"{path}: 'abi' must be a list of objects")
    return Artifact(
        contract_name=_text(raw, "contractName", path),
        abi=abi,
        bytecode=_bytecode(raw, "bytecode", path),
        deployed_bytecode=_bytecode(raw, "deployedBytecode", path),
    )


def _text(raw: dict[str, object], key: str, path: Path) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise ArtifactError(f"{path}: {key!r} must be a string")
    return value


def _bytecode(raw: dict[str, object], key: str, path: Path) -> str:
    value = _text(raw, key, path)
    if not _HEX.match(value):
        raise ArtifactError(f"{path}: {key!r} must be non-empty 0x-prefixed lower-case hex")
    return value
