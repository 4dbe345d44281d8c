"""A newer Mosquitto than the machine's, from Debian's bookworm-backports, unpacked into a cache."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# The newest Mosquitto Debian builds for bookworm (the machine's release): 2.0.21, close to the
# eclipse-mosquitto:2.0.22 image docker-compose.yml pins, and past 2.0.12, which changed how a
# broker with per_listener_settings treats offline sessions (deploy/mosquitto/mosquitto.conf).
VERSION = "2.0.21-1~bpo12+1"
# The broker's package and the libraries it links that a machine with bookworm's mosquitto
# 2.0.11 may lack: its own libmosquitto1, libwebsockets17 (2.0.11 does not need it) and libdlt2.
PACKAGES = [
    f"mosquitto={VERSION}",
    f"libmosquitto1={VERSION}",
    "libwebsockets17/bookworm",
    "libdlt2/bookworm",
]
# The dynamic-security plugin deploy/mosquitto/mosquitto.conf loads: in the broker's package.
PLUGIN = "mosquitto_dynamic_security.so"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SOURCES = "".join(
    f"deb [signed-by={KEYRING}] http://deb.debian.org/debian {suite} main\n"
    for suite in ("bookworm-backports", "bookworm")
)


class Unavailable(Exception):
    """The release cannot be had here; the message says why."""


def cache_dir() -> Path:
    """Outside the work tree, so that a fresh clone (CI) on the same machine reuses it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracefin" / f"mosquitto-{VERSION.replace('~', '_').replace('+', '_')}"


def newer_mosquitto() -> Path:
    """A launcher for Debian's mosquitto 2.0.21 (its libraries beside it), fetched once with
    `apt-get download` through a private apt state, never installed system-wide."""
    target = cache_dir()
    launcher = target / "mosquitto"
    if launcher.exists():
        return launcher
    apt_get = shutil.which("apt-get")
    dpkg_deb = shutil.which("dpkg-deb")
    keyring = Path(KEYRING)
    if apt_get is None or dpkg_deb is None or not keyring.exists():
        raise Unavailable("needs Debian's apt-get, dpkg-deb and debian-archive-keyring")
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fetch for all the xdist workers
        if launcher.exists():
            return launcher
        with tempfile.TemporaryDirectory() as scratch:
            _fetch(Path(scratch), apt_get, dpkg_deb, target)
    return launcher


def newer_plugin() -> Path:
    """Mosquitto 2.0.21's dynamic-security plugin, unpacked beside its broker by newer_mosquitto."""
    plugin = newer_mosquitto().parent / "lib" / PLUGIN
    if not plugin.exists():
        raise Unavailable(f"{plugin} is missing: remove {plugin.parent.parent} to fetch it again")
    return plugin


def _fetch(scratch: Path, apt_get: str, dpkg_deb: str, target: Path) -> None:
    (scratch / "lists" / "partial").mkdir(parents=True)
    (scratch / "cache" / "archives" / "partial").mkdir(parents=True)
    (scratch / "sources.list").write_text(SOURCES)
    options = [
        f"-oDir::Etc::sourcelist={scratch / 'sources.list'}",
        "-oDir::Etc::sourceparts=/nonexistent",
        f"-oDir::State::Lists={scratch / 'lists'}",
        f"-oDir::Cache={scratch / 'cache'}",
        # Downloading as root into a folder apt's sandbox user cannot write: no sandbox.
        "-oAPT::Sandbox::User=root",
        "-qq",
    ]
    debs = scratch / "debs"
    debs.mkdir()
    for step in (["update"], ["download", *PACKAGES]):
        try:
            subprocess.run(
                [apt_get, *options, *step],
                cwd=debs,
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", b"") or b""
            raise Unavailable(
                f"apt-get {step[0]} failed: {output.decode(errors='replace').strip()[-300:]}"
            ) from None
    root = scratch / "root"
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run([dpkg_deb, "-x", str(deb), str(root)], check=True)
    staged = scratch / "staged"
    (staged / "lib").mkdir(parents=True)
    shutil.copy2(root / "usr" / "sbin" / "mosquitto", staged / "mosquitto-bin")
    for library in (root / "usr" / "lib" / "x86_64-linux-gnu").glob("*.so*"):
        shutil.copy2(library, staged / "lib" / library.name, follow_symlinks=True)
    if not (staged / "lib" / PLUGIN).exists():
        raise Unavailable(f"the {VERSION} package has no {PLUGIN}")
    launcher = staged / "mosquitto"
    launcher.write_text(
        f'#!/bin/sh\nLD_LIBRARY_PATH="{target}/lib" exec "{target}/mosquitto-bin" "$@"\n'
    )
    launcher.chmod(0o755)
    check = subprocess.run(
        [str(staged / "mosquitto-bin"), "-h"],
        env={**os.environ, "LD_LIBRARY_PATH": str(staged / "lib")},
        capture_output=True,
        check=False,
    )
    if b"mosquitto version 2.0.21" not in check.stdout + check.stderr:
        raise Unavailable(f"the unpacked broker does not run: {check.stderr[-300:]!r}")
    if target.exists():
        shutil.rmtree(target)
    shutil.move(staged, target)
