"""The committed contract artifacts are exactly what the pinned compiler builds from source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ledger.contracts import (
    ARTIFACTS_DIR,
    PLEDGE_REGISTRY,
    TRACE_ANCHOR,
    ArtifactError,
    load_artifact,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot rebuild the contract artifacts")
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.fail("node_modules/solc is missing: run `make bootstrap` (npm ci)")
    out = tmp_path_factory.mktemp("artifacts")
    result = subprocess.run(
        [node, "contracts/build.mjs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_committed_artifacts_are_reproducible(rebuilt: Path) -> None:
    built = sorted(path.name for path in rebuilt.iterdir())
    committed = sorted(path.name for path in ARTIFACTS_DIR.glob("*.json"))
    assert built == committed == ["PledgeRegistry.json", "TraceAnchor.json"]
    for name in built:
        assert (rebuilt / name).read_bytes() == (ARTIFACTS_DIR / name).read_bytes(), (
            f"contracts/artifacts/{name} is stale: run `make contracts` and commit the result"
        )


def test_batch_anchored_event_abi_is_exactly_as_declared() -> None:
    events = [
        entry
        for entry in load_artifact(TRACE_ANCHOR).abi
        if entry["type"] == "event" and entry["name"] == "BatchAnchored"
    ]
    assert len(events) == 1
    event = events[0]
    assert event["anonymous"] is False
    assert [(arg["name"], arg["type"], arg["indexed"]) for arg in event["inputs"]] == [
        ("batchId", "uint64", True),
        ("root", "bytes32", True),
        ("firstIndex", "uint64", False),
        ("count", "uint32", False),
    ]


@pytest.mark.parametrize("name", [TRACE_ANCHOR, PLEDGE_REGISTRY])
def test_artifacts_load_with_bytecode(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact.contract_name == name
    assert artifact.bytecode.startswith("0x")
    assert artifact.deployed_bytecode.startswith("0x")
    assert len(artifact.deployed_bytecode) > 2
    # The creation code embeds the runtime code it deploys.
    assert artifact.deployed_bytecode[2:] in artifact.bytecode


def test_load_artifact_refuses_unknown_and_path_like_names(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="make contracts"):
        load_artifact("NoSuchContract")
    with pytest.raises(ArtifactError, match="not a contract name"):
        load_artifact("../artifacts/TraceAnchor")
    (tmp_path / "Broken.json").write_text('{"abi": [], "contractName": "Broken", "bytecode": "0x"}')
    with pytest.raises(ArtifactError, match="'bytecode'"):
        load_artifact("Broken", tmp_path)
