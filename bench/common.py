"""What the benchmarks share: the database server they use and where their figures go."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Lines one `mosquitto_pub -q 1 -l` may be given. Mosquitto 2.0.11's mosquitto_pub waits at the
# end of its input for the PUBACK of the last message's id, and ids are 16-bit: given more than
# 65 535 lines while the broker lags, an earlier message with the same id is acknowledged first,
# it disconnects with the rest unsent, and still exits 0 (measured: 131 000 lines piped in,
# 65 480 reached the broker; 140 000 in, 8 939). So no publisher process gets more than this.
MAX_LINES_PER_MOSQUITTO_PUB = 60_000
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get(
    "TRACEFIN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def save_result(name: str, figures: dict[str, Any]) -> Path:
    """Write `bench/results/{name}-latest.json` with the date and machine, and say where."""
    result = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-latest.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")
    return path
