"""The start-up heap of a long-running process is frozen out of the collector's walk."""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a child: freezing the test worker's own heap would keep its garbage for the session.
PROBE = """
import gc, json
from tracefin.processes.api import build_app  # the heaviest start-up: the whole API
from tracefin.process import freeze_startup_heap
before = len(gc.get_objects())
freeze_startup_heap()
print(json.dumps({"before": before, "after": len(gc.get_objects()),
                  "frozen": gc.get_freeze_count()}))
"""


def test_freezing_leaves_the_collector_nothing_of_the_start_up_heap() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    counts = json.loads(done.stdout.splitlines()[-1])
    assert counts["before"] > 10_000  # the modules, models and routes of the API
    assert counts["frozen"] >= counts["before"] - 100
    assert counts["after"] < 100
