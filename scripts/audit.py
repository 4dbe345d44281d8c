"""`make audit`: known vulnerabilities in every locked Python package and in the node tools.

Runs pip-audit (pinned in the dev lock) over each lock file in requirements/, hashes required and
pip not involved, and `npm audit` over package-lock.json, then sorts what they said into three
outcomes, printed and returned as the exit status:

  0  audited, nothing found (or only findings excused in requirements/audit-exceptions.txt);
  1  a finding, or a tool that failed for a reason of its own (an unreadable lock, a crash);
  2  an advisory service could not be asked, so nothing was audited. With --unreachable=warn
     this prints a warning and returns 0 instead: for CI on machines that reach the package
     registries but not their advisory APIs. It is never silent, and never reported as clean.

pip-audit on its own would hide the third case: when PyPI answers 404 for a release's JSON
document (as a registry mirror without that API does), it skips every package and still prints
"No known vulnerabilities found" with exit status 0 unless given --strict.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Smallest first (see main). dev.txt holds every package of runtime.txt at the same version and
# hashes (tests/unit/test_locks.py), and so is audited twice at little cost (pip-audit caches).
LOCKS = [
    "requirements/uv.txt",
    "requirements/pip.txt",
    "requirements/runtime.txt",
    "requirements/dev.txt",
]
EXCEPTIONS = ROOT / "requirements" / "audit-exceptions.txt"
FOUND, UNREACHABLE = 1, 2
# What pip-audit says of a package when the PyPI JSON API for its release does not answer.
NOT_ON_PYPI = "Dependency not found on PyPI"
# What a network failure looks like in a tool's error output.
NETWORK_ERRORS = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "ETIMEDOUT",
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "audit endpoint returned an error",
)


def excused() -> dict[str, str]:
    """Advisory id -> why it does not apply (one `ID  reason` a line; `#` starts a comment)."""
    reasons = {}
    if EXCEPTIONS.exists():
        for line in EXCEPTIONS.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                ident, _, reason = line.partition(" ")
                reasons[ident] = reason.strip()
    return reasons


def pip_audit(lock: str, ignored: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            str(Path(sys.executable).parent / "pip-audit"),
            "--require-hashes",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(report),
            "--requirement",
            lock,
        ]
        for ident in ignored:
            command += ["--ignore-vuln", ident]
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        data: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    return judge_pip_audit(lock, data, run.returncode, run.stderr, len(ignored))


def judge_pip_audit(
    lock: str, data: dict[str, Any], status: int, stderr: str, excused_count: int
) -> int:
    """The outcome of one pip-audit run from its JSON report (empty when it wrote none)."""
    dependencies = data.get("dependencies", [])
    if not dependencies:
        if any(marker in stderr for marker in NETWORK_ERRORS):
            print(f"pip-audit {lock}: NOT AUDITED: the advisory service could not be reached:")
            print(stderr)
            return UNREACHABLE
        print(f"pip-audit {lock}: failed (status {status}):\n{stderr}")
        return FOUND
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            print(
                f"pip-audit {lock}: {dep['name']} {dep['version']}: {vuln['id']} "
                f"(aliases {', '.join(vuln.get('aliases', [])) or '-'}; fixed in {fixed})"
            )
    if vulnerable:
        return FOUND
    if len(skipped) == len(dependencies) and all(NOT_ON_PYPI in d["skip_reason"] for d in skipped):
        print(
            f"pip-audit {lock}: NOT AUDITED: PyPI's JSON API answered no release of the "
            f"{len(skipped)} packages (no advisory data reachable from here)"
        )
        return UNREACHABLE
    if skipped:
        for dep in skipped:
            print(f"pip-audit {lock}: not audited: {dep['skip_reason']}")
        return FOUND
    print(
        f"pip-audit {lock}: {len(dependencies)} packages, no known vulnerabilities"
        + (f" ({excused_count} advisories excused)" if excused_count else "")
    )
    return 0


def npm_audit(ignored: dict[str, str]) -> int:
    npm = shutil.which("npm")
    if npm is None:
        print("npm audit: npm is not on PATH")
        return FOUND
    run = subprocess.run(
        [npm, "audit", "--json"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    try:
        data: dict[str, Any] = json.loads(run.stdout)
    except json.JSONDecodeError:
        data = {}
    return judge_npm_audit(data, run.returncode, run.stderr, ignored)


def judge_npm_audit(data: dict[str, Any], status: int, stderr: str, ignored: dict[str, str]) -> int:
    """The outcome of `npm audit --json` from what it printed (empty when not JSON)."""
    if "vulnerabilities" not in data:
        said = str(data.get("message") or stderr)
        if data.get("statusCode") or any(marker in said + stderr for marker in NETWORK_ERRORS):
            print(f"npm audit: NOT AUDITED: the registry's advisory endpoint answered: {said}")
            return UNREACHABLE
        print(f"npm audit: failed (status {status}): {said}")
        return FOUND
    findings = []
    for name, entry in data["vulnerabilities"].items():
        for via in entry.get("via", []):
            if isinstance(via, dict):
                ident = via.get("url", "").rsplit("/", 1)[-1] or str(via.get("source"))
                if ident not in ignored:
                    findings.append(
                        f"{name} {entry.get('range', '')}: {ident} "
                        f"({via.get('severity')}: {via.get('title')})"
                    )
    for finding in findings:
        print(f"npm audit: {finding}")
    if findings:
        return FOUND
    print(
        f"npm audit: {data.get('metadata', {}).get('dependencies', {}).get('total', '?')} "
        "packages, no known vulnerabilities"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--unreachable",
        choices=["fail", "warn"],
        default="fail",
        help="what an advisory service that cannot be asked means (default fail)",
    )
    args = parser.parse_args()
    ignored = excused()
    # The smallest lock first: when PyPI's advisory data cannot be had for it, it cannot be had
    # for the others either, and asking for each of their hundred-odd packages costs seconds.
    outcomes = []
    for lock in LOCKS:
        outcomes.append(pip_audit(lock, ignored))
        if outcomes[-1] == UNREACHABLE:
            for rest in LOCKS[len(outcomes) :]:
                print(f"pip-audit {rest}: NOT AUDITED (not asked: the service did not answer)")
            break
    outcomes.append(npm_audit(ignored))
    if FOUND in outcomes:
        print(
            "make audit: FAILED: see the findings above (fix them, or excuse each one in "
            "requirements/audit-exceptions.txt and docs/deployment.md)"
        )
        return FOUND
    if UNREACHABLE in outcomes:
        banner = (
            "make audit: NOT RUN: an advisory service could not be asked, so these "
            "dependencies are unaudited; run `make audit` where it can be"
        )
        if args.unreachable == "warn":
            print(f"WARNING: {banner}", file=sys.stderr)
            return 0
        print(banner, file=sys.stderr)
        return UNREACHABLE
    print("make audit: clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
