"""Which pure-core modules run compiled (scripts/build_native.py), and whether that is stale."""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# The modules `make native` compiles with mypyc, as paths from the checkout's root. The one list:
# the build script, the tests and the staleness check read it.
NATIVE_MODULES: tuple[str, ...] = (
    "epcis/event_hash.py",
    "epcis/identifiers.py",
    "epcis/epc_format.py",
)
NATIVE_PACKAGE = "epcis"
# mypyc's code shared by the compiled modules, one extension module of its own.
NATIVE_GROUP = f"{NATIVE_PACKAGE}._native"
# Beside the extensions: the SHA-256 of every source of the package as it was when they were
# built. Every source, not only the compiled ones: mypyc writes the value of a `Final` constant
# of another module into the compiled code, so a change there makes the build stale too.
STAMP_NAME = "native-build.json"


def package_dir() -> Path:
    """The directory of the package the compiled modules live in, found without importing it."""
    spec = importlib.util.find_spec(NATIVE_PACKAGE)
    assert spec is not None
    assert spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations)))


def module_name(path: str) -> str:
    """`epcis/event_hash.py` -> `epcis.event_hash`."""
    return path.removesuffix(".py").replace("/", ".")


def extension_modules(directory: Path) -> dict[str, Path]:
    """The extension modules in `directory`, by module name (`event_hash`, `_native__mypyc`)."""
    found: dict[str, Path] = {}
    for path in directory.iterdir():
        # The most specific suffix first (`.cpython-311-x86_64-linux-gnu.so` before `.so`), as
        # the import system's own list has them.
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if path.name.endswith(suffix):
                found[path.name.removesuffix(suffix)] = path
                break
    return found


def source_digests(directory: Path) -> dict[str, str]:
    """SHA-256 (hex) of every Python source in `directory`, by file name."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.glob("*.py"))
    }


def write_stamp(directory: Path, digests: dict[str, str]) -> None:
    """Record the sources a build was made from (taken before it began, so an edit saved
    while it compiled makes it stale rather than current)."""
    (directory / STAMP_NAME).write_text(json.dumps({"sources": digests}, indent=1) + "\n")


def remove_stamp(directory: Path) -> None:
    (directory / STAMP_NAME).unlink(missing_ok=True)


@dataclass(frozen=True)
class NativeState:
    """The compiled modules of a directory and what is wrong with them, if anything."""

    compiled: tuple[str, ...]
    problems: tuple[str, ...]


def native_state(directory: Path) -> NativeState:
    """Which modules are compiled in `directory`, and why the build is stale if it is: a source
    changed since (by content, not by time: a copy that keeps old times is caught too), an
    extension without a recorded build, or one whose source is gone."""
    extensions = extension_modules(directory)
    problems: list[str] = []
    if extensions:
        try:
            recorded = json.loads((directory / STAMP_NAME).read_text())["sources"]
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        if not isinstance(recorded, dict):
            problems.append(f"no record of the build in {STAMP_NAME}")
        else:
            current = source_digests(directory)
            changed = sorted(
                name
                for name in recorded.keys() | current.keys()
                if recorded.get(name) != current.get(name)
            )
            if changed:
                problems.append("sources changed since the build: " + ", ".join(changed))
        orphans = sorted(
            name
            for name in extensions
            if not name.endswith("__mypyc") and not (directory / f"{name}.py").exists()
        )
        if orphans:
            problems.append("compiled modules without a source: " + ", ".join(orphans))
    return NativeState(compiled=tuple(sorted(extensions)), problems=tuple(problems))


def stale_build_message(state: NativeState) -> str | None:
    """What to tell a person about a stale build, or None if it is current (or absent)."""
    if not state.problems:
        return None
    return (
        "the compiled modules do not match their source ("
        + "; ".join(state.problems)
        + "): run `make native`, or `make native NATIVE=0` for pure Python"
    )


def is_compiled(module: ModuleType) -> bool:
    """Whether `module` was loaded from an extension module rather than from its source."""
    spec = module.__spec__
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_forms() -> dict[str, bool]:
    """Each listed module, imported now if it is not yet, and whether it runs compiled."""
    return {
        name: is_compiled(importlib.import_module(name))
        for name in map(module_name, NATIVE_MODULES)
    }


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the listed modules at their source file, ahead of the extension that the path
    finder would prefer."""

    def __init__(self, directory: Path) -> None:
        self.sources = {module_name(path): directory.parent / path for path in NATIVE_MODULES}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def import_sources_from_now_on() -> None:
    """Make this process import the listed modules from their source even where compiled ones
    lie beside it (for comparisons: tests/support/pure_oracle.py, bench/native.py). Modules
    already imported stay as they are; is_compiled tells which form each one is."""
    sys.meta_path.insert(0, _SourcesFirst(package_dir()))
