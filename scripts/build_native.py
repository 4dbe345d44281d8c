"""`make native`: compile the hot modules of the pure core with mypyc, in place, or remove them.

The modules listed in tracefin/native.py (NATIVE_MODULES) are ordinary, typed Python (mypy
strict). mypyc, which comes with the pinned mypy of the dev lock, turns each into a C extension
written next to its source (`epcis/event_hash.cpython-311-*.so` beside `epcis/event_hash.py`,
with the shared code in `epcis/_native__mypyc.*.so`). Python imports an extension module in
preference to the source of the same name, so once built, every process of this checkout runs
the compiled form; the source stays the one definition, and the tests prove both forms give the
same results (tests/unit/test_native.py).

    .venv/bin/python scripts/build_native.py          # build (fails loudly if it cannot)
    .venv/bin/python scripts/build_native.py --pure   # remove the compiled modules

Nothing is done while the compiled modules are up to date (the same sources by content, mypy
and Python, and no source newer than its extension). Otherwise the compiled modules of the
earlier build are removed first, so a module taken off the list, or a failed build, never
leaves a stale extension shadowing its source; tests/conftest.py refuses to run against one,
and `tracefin` warns of one at start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

from tracefin.native import (
    NATIVE_GROUP,
    NATIVE_MODULES,
    extension_modules,
    package_dir,
    stale_modules,
)

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "native"
# What a build was made of: a change of the list or of a source (by content, not only by time),
# of mypy (mypyc) or of Python rebuilds.
STAMP = BUILD_DIR / "stamp.json"


def _recipe() -> dict[str, object]:
    sources = {
        path: hashlib.sha256((ROOT / path).read_bytes()).hexdigest() for path in NATIVE_MODULES
    }
    return {"sources": sources, "mypy": version("mypy"), "python": sys.version}


def up_to_date() -> bool:
    """Whether the compiled modules are exactly the list's, built from today's sources."""
    directory = package_dir()
    wanted = {Path(path).stem for path in NATIVE_MODULES} | {NATIVE_GROUP.rpartition(".")[2]}
    have = {name.removesuffix("__mypyc") for name in extension_modules(directory)}
    try:
        recipe = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return False
    return recipe == _recipe() and have == wanted and not stale_modules(directory)


def remove_compiled() -> None:
    for path in extension_modules(package_dir()).values():
        path.unlink()
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def build() -> None:
    # Imported here: a --pure run needs neither mypyc nor setuptools' build machinery.
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(ROOT)  # build_ext --inplace writes relative to the working directory
    extensions = mypycify(
        list(NATIVE_MODULES),
        opt_level="3",
        group_name=NATIVE_GROUP,
        target_dir=str(BUILD_DIR / "c"),
    )
    setup(
        name="tracefin-native",
        ext_modules=extensions,
        packages=[],
        py_modules=[],
        script_args=[
            "--quiet",
            "build_ext",
            "--inplace",
            "--build-temp",
            str(BUILD_DIR / "temp"),
            "--build-lib",
            str(BUILD_DIR / "lib"),
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pure", action="store_true", help="remove the compiled modules")
    args = parser.parse_args()
    if args.pure:
        remove_compiled()
        print("native: pure Python (no compiled modules)")
        return 0
    if up_to_date():
        print("native: up to date")
        return 0
    remove_compiled()
    build()
    if not up_to_date_after_build():
        remove_compiled()
        print("native: the build did not leave the list's modules; removed it", file=sys.stderr)
        return 1
    print(f"native: {len(NATIVE_MODULES)} modules compiled with mypyc ({NATIVE_GROUP})")
    return 0


def up_to_date_after_build() -> bool:
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    STAMP.write_text(json.dumps(_recipe()))
    return up_to_date()


if __name__ == "__main__":
    sys.exit(main())
