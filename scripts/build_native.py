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

Nothing is done while the build is current: the same module list, mypy, Python and build
script, and every source of the package the same by content (tracefin.native.native_state;
`epcis/native-build.json` records them). Otherwise the extensions of the earlier build are
removed first, so a module taken off the list, or a failed build, never leaves one shadowing
its source; tests/conftest.py and `tracefin` refuse to run against a stale one.
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

# This checkout's tracefin, whichever one the virtualenv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracefin.native import (
    NATIVE_GROUP,
    NATIVE_MODULES,
    NATIVE_PACKAGE,
    extension_modules,
    native_state,
    remove_stamp,
    source_digests,
    write_stamp,
)

ROOT = Path(__file__).resolve().parents[1]
# This checkout's package (not whichever one the virtualenv would import: a venv shared by two
# worktrees must not have one's build remove the other's).
PACKAGE_DIR = ROOT / NATIVE_PACKAGE
BUILD_DIR = ROOT / "build" / "native"
# What else a build depends on: a change of any of these rebuilds.
RECIPE = BUILD_DIR / "recipe.json"


def _recipe() -> dict[str, object]:
    return {
        "modules": list(NATIVE_MODULES),
        "mypy": version("mypy"),
        "python": sys.version,
        "script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }


def up_to_date() -> bool:
    """Whether the extensions are exactly the list's, built by this recipe from these sources."""
    wanted = {Path(path).stem for path in NATIVE_MODULES} | {
        NATIVE_GROUP.rpartition(".")[2] + "__mypyc"
    }
    state = native_state(PACKAGE_DIR)
    try:
        recipe = json.loads(RECIPE.read_text())
    except (OSError, ValueError):
        return False
    return recipe == _recipe() and set(state.compiled) == wanted and not state.problems


def remove_compiled() -> None:
    for path in extension_modules(PACKAGE_DIR).values():
        path.unlink()
    remove_stamp(PACKAGE_DIR)
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
    # Taken before the build: an edit saved while it compiles leaves the build stale.
    sources = source_digests(PACKAGE_DIR)
    recipe = _recipe()
    try:
        build()
    except (Exception, SystemExit):  # setuptools reports a failed compile as SystemExit
        remove_compiled()
        raise
    write_stamp(PACKAGE_DIR, sources)
    RECIPE.write_text(json.dumps(recipe))
    if not up_to_date():
        problems = native_state(PACKAGE_DIR).problems or ("not the list's modules",)
        remove_compiled()
        print(f"native: build not current ({'; '.join(problems)}); removed", file=sys.stderr)
        return 1
    print(f"native: {len(NATIVE_MODULES)} modules compiled with mypyc ({NATIVE_GROUP})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
