"""Which pure-core modules run compiled (scripts/build_native.py), and which are stale."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
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


def stale_modules(directory: Path) -> list[str]:
    """Names of compiled modules in `directory` whose source was changed after they were built.

    Python imports the extension in preference to the source, so a stale one silently runs old
    code: a checkout or an edit after `make native` makes the source the newer file.
    """
    stale = []
    for name, extension in sorted(extension_modules(directory).items()):
        source = directory / f"{name}.py"
        if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
            stale.append(name)
    return stale


def is_compiled(module: ModuleType) -> bool:
    """Whether `module` was loaded from an extension module rather than from its source."""
    spec = module.__spec__
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


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
