"""The dependency lock files, and the build steps that install from them, checked statically.

Every Python package that reaches the virtualenv or the image is pinned and hashed in
requirements/*.txt (`make lock`); pyproject.toml's pins and the locks agree; the Makefile and the
Dockerfile install only from the locks, with --require-hashes. And `make audit` never calls a run
that audited nothing clean (scripts/audit.py).
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
LOCKS = ("pip", "runtime", "dev", "uv")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a lock file; fails on anything but `name==version --hash…`."""
    text = (REQUIREMENTS / f"{lock}.txt").read_text()
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements/{lock}.txt: not a pinned requirement: {line[:80]!r}"
        hashes = frozenset(HASH.findall(line))
        assert hashes, f"requirements/{lock}.txt: {match['name']} has no --hash"
        leftover = HASH.sub("", line[match.end() :]).strip()
        assert not leftover, f"requirements/{lock}.txt: {match['name']}: unexpected {leftover!r}"
        name = canonical(match["name"])
        assert name not in found, f"requirements/{lock}.txt: {name} twice"
        found[name] = (match["version"], hashes)
    assert found, f"requirements/{lock}.txt is empty"
    return found


def direct(requirements: list[str]) -> dict[str, str]:
    """name -> pinned version of `name[extras]==version` requirements."""
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;]+)", requirement.strip())
        assert match, f"not pinned with ==: {requirement!r}"
        pins[canonical(match[1])] = match[2]
    return pins


@pytest.fixture(scope="module")
def locks() -> dict[str, dict[str, tuple[str, frozenset[str]]]]:
    return {lock: entries(lock) for lock in LOCKS}


def test_every_lock_pins_and_hashes_every_requirement(
    locks: dict[str, dict[str, tuple[str, frozenset[str]]]],
) -> None:
    # entries() asserts the form; here, that the files are the ones `make lock` writes.
    for lock in LOCKS:
        assert "make lock" in (REQUIREMENTS / f"{lock}.txt").read_text().split("\n", 3)[1]
    assert set(locks["runtime"]) <= set(locks["dev"])


def test_locks_hold_every_direct_dependency_at_its_pyproject_pin(
    locks: dict[str, dict[str, tuple[str, frozenset[str]]]],
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = direct(project["dependencies"])
    extras = direct(project["optional-dependencies"]["dev"])
    extras |= direct(project["optional-dependencies"]["embedded"])
    for name, version in runtime.items():
        assert locks["runtime"].get(name, ("missing",))[0] == version, f"runtime.txt: {name}"
    for name, version in (runtime | extras).items():
        assert locks["dev"].get(name, ("missing",))[0] == version, f"dev.txt: {name}"
    for lock in ("pip", "uv"):
        wanted = (REQUIREMENTS / f"{lock}.in").read_text().split()
        assert {n: v for n, (v, _) in locks[lock].items()} == direct(wanted), f"{lock}.txt"
    assert {"pip", "setuptools"} <= set(locks["pip"])


def test_a_package_in_two_locks_is_the_same_release_and_files(
    locks: dict[str, dict[str, tuple[str, frozenset[str]]]],
) -> None:
    seen: dict[str, tuple[str, tuple[str, frozenset[str]]]] = {}
    for lock, pins in locks.items():
        for name, pin in pins.items():
            if name in seen:
                other, first = seen[name]
                assert pin == first, f"{name}: {other}.txt and {lock}.txt differ"
            seen[name] = (lock, pin)


def recipe(makefile: str, target: str) -> tuple[str, str]:
    """(prerequisites, recipe) of a Makefile rule, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", makefile)
    match = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert match, f"no rule for {target}"
    return match[1], match[2]


def pip_installs(commands: str) -> list[str]:
    return re.findall(r"pip (?:install|wheel)\b[^\n&;]*", commands)


def test_make_bootstrap_installs_only_from_the_locks_with_hashes() -> None:
    prerequisites, commands = recipe((ROOT / "Makefile").read_text(), "$(VENV)/.installed")
    assert {"pyproject.toml", "requirements/pip.txt", "requirements/dev.txt"} <= set(
        prerequisites.split()
    )
    installs = pip_installs(commands)
    assert installs[0].endswith("--require-hashes -r requirements/pip.txt"), installs
    assert installs[1].endswith("--require-hashes -r requirements/dev.txt"), installs
    # The project itself: no dependencies, no isolated build environment (unhashed downloads).
    assert installs[2:] == ["pip install --quiet --no-deps --no-build-isolation -e ."], installs


def test_the_image_installs_only_from_the_runtime_lock_with_hashes() -> None:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    runs = " && ".join(re.findall(r"^RUN (.*)$", text, re.MULTILINE))
    installs = pip_installs(runs)
    locked = [step for step in installs if "--require-hashes" in step]
    assert [step.split()[-1] for step in locked] == [
        "requirements/pip.txt",
        "requirements/runtime.txt",
    ]
    for step in installs:
        if step not in locked:
            assert "--no-deps" in step, f"unlocked install in the image: {step}"
        if step.startswith("pip wheel"):
            assert "--no-build-isolation" in step, step
    # Nothing else fetches Python packages: no requirements generated at build time.
    assert "tomllib" not in text


def load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit", ROOT / "scripts" / "audit.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SKIPPED = {"skip_reason": "Dependency not found on PyPI and could not be audited: x (1.0)"}


@pytest.mark.parametrize(
    ("report", "stderr", "outcome"),
    [
        # Every package skipped because PyPI's JSON API did not answer (a registry mirror):
        # pip-audit itself says "No known vulnerabilities found" and exits 0.
        ({"dependencies": [{"name": "a", **SKIPPED}, {"name": "b", **SKIPPED}]}, "", 2),
        ({}, "requests.exceptions.ConnectionError: … Max retries exceeded", 2),
        ({}, "ERROR: package x has duplicate requirements", 1),
        (
            {
                "dependencies": [
                    {"name": "a", "version": "1", "vulns": []},
                    {"name": "b", **SKIPPED},
                ]
            },
            "",
            1,
        ),
        (
            {"dependencies": [{"name": "a", "version": "1", "vulns": [{"id": "PYSEC-1"}]}]},
            "",
            1,
        ),
        ({"dependencies": [{"name": "a", "version": "1", "vulns": []}]}, "", 0),
    ],
    ids=["all-skipped", "no-network", "broken", "some-skipped", "finding", "clean"],
)
def test_audit_never_reports_an_unaudited_lock_as_clean(
    report: dict[str, Any], stderr: str, outcome: int
) -> None:
    assert load_audit().judge_pip_audit("x.txt", report, 1, stderr, 0) == outcome


def test_npm_audit_outcomes() -> None:
    audit = load_audit()
    refused = {"message": "405 Method Not Allowed - POST …/advisories/bulk", "statusCode": 405}
    assert audit.judge_npm_audit(refused, 1, "", {}) == audit.UNREACHABLE
    finding = {
        "vulnerabilities": {
            "solc": {"range": "<1", "via": [{"url": "https://x/GHSA-aaaa", "title": "t"}]}
        }
    }
    assert audit.judge_npm_audit(finding, 1, "", {}) == audit.FOUND
    assert audit.judge_npm_audit(finding, 1, "", {"GHSA-aaaa": "excused"}) == 0
    assert audit.judge_npm_audit({"vulnerabilities": {}}, 0, "", {}) == 0
