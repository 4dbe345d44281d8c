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


# Also in a child: it changes the collector's thresholds for the whole process.
BETWEEN_BATCHES = """
import gc, json, weakref
from tracefin.process import collect_between_batches

class Node:
    pass

def cycle():
    node = Node()
    node.self = node
    return weakref.ref(node)

after_batch = collect_between_batches(full_every=3, backstop=50_000)
# A batch's allocations, under the backstop: nothing collects them while the batch runs.
in_batch = [cycle() for _ in range(10_000)]
kept_during_batch = sum(ref() is not None for ref in in_batch)
after_batch()
freed_after_batch = sum(ref() is None for ref in in_batch)
# A cycle that outlives a batch's collection is left to the full one, every third batch.
survivor_holder = [Node()]
survivor_holder[0].self = survivor_holder[0]
survivor = weakref.ref(survivor_holder[0])
after_batch()  # the second batch: the survivor is still referenced, moved to an older generation
del survivor_holder
after_batch()  # the third: a full collection
survivor_freed = survivor() is None
# No batch, many allocations (a worker retrying an outage): the backstop collects by itself.
storm = [cycle() for _ in range(60_000)]
print(json.dumps({"kept": kept_during_batch, "freed": freed_after_batch,
                  "survivor_freed": survivor_freed,
                  "storm_freed_without_a_batch": sum(ref() is None for ref in storm) > 0}))
"""


def test_between_batches_the_collector_runs_when_told_and_frees_the_batch_s_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BETWEEN_BATCHES],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {
        "kept": 10_000,
        "freed": 10_000,
        "survivor_freed": True,
        "storm_freed_without_a_batch": True,
    }
