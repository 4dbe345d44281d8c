"""Where one ingest worker's CPU goes per event, under the load of bench/ingest.py.

Pre-signed single-event messages (one file and one `mosquitto_pub -q 1 -l` per device topic) go
through one `tracefin ingest` process run under cProfile, with a profiler per thread timed by
that thread's own CPU clock (so the MQTT network thread and the batch thread are both counted,
and time spent waiting is not). Prints the CPU microseconds per event of each stage and writes
them to bench/results/profile-ingest-latest.json. cProfile slows the worker down (every call is
timed): read the shares, not the absolute figures; bench/ingest.py gives the unprofiled CPU.

    .venv/bin/python bench/profile_ingest.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (label, file the function is in, function): cumulative CPU of each, per event. Nested rows are
# indented: a parent's figure includes its children's.
STAGES: list[tuple[str, str, str]] = [
    ("MQTT network thread (paho loop, all of it)", "paho/mqtt/client.py", "_thread_main"),
    ("  of it: our on_message (Inbound, hand-over)", "ingest/mqtt_link.py", "_handle_message"),
    ("batch thread: gather a batch from the queue", "ingest/worker.py", "_next_batch"),
    ("batch thread: process a batch (all of it)", "ingest/worker.py", "_process"),
    ("  validate + hash + recover (epcis.capture)", "epcis/capture.py", "capture"),
    ("    JSON decode (orjson, size/nesting/NUL checks)", "epcis/capture.py", "decode_json"),
    ("    model validation (pydantic parse_event)", "epcis/model.py", "parse_event"),
    ("    identifier normalisation (normalise_event)", "epcis/event_hash.py", "normalise_event"),
    ("    index columns", "epcis/capture.py", "index_columns"),
    ("    GS1 check digits", "epcis/capture.py", "_check_keys"),
    ("    event hash (canonical form + SHA-256)", "epcis/event_hash.py", "event_hash_digest"),
    ("    signature recovery (secp256k1)", "epcis/signatures.py", "recover_address"),
    ("  database work (lookup, COPY, commit)", "ingest/worker.py", "_with_db"),
    ("    device lookup (one query per batch)", "ingest/worker.py", "resolve"),
    ("    COPY events, attestations (store)", "ingest/capture.py", "store"),
    ("  receipts (build + publish)", "ingest/worker.py", "_answer"),
    ("  acks", "ingest/mqtt_link.py", "ack"),
]


def worker_main(stats_path: Path, client_id: str) -> None:
    """Run `tracefin ingest` with a CPU-time profiler in every thread; dump them at exit."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        target = getattr(thread, "_target", None)
        if getattr(target, "__name__", "") == "_report":
            # The reporter sleeps until the process ends: a call still open when the stats are
            # taken is timed with the dumping thread's clock, so it is left out.
            original_run(thread)
            return
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.runcall(original_run, thread)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    from tracefin.cli import main

    main_profile = cProfile.Profile(time.thread_time)
    profiles.append(main_profile)
    try:
        main_profile.runcall(main, ["ingest", "--client-id", client_id])
    finally:
        # paho's thread and the pool's have ended by now (link.stop, pool.close).
        for profile in profiles:
            profile.disable()
        combined = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            with contextlib.suppress(TypeError):  # a thread that never ran a call has no stats
                combined.add(profile)
        combined.dump_stats(stats_path)


def _find(stats: dict[Any, Any], filename: str, function: str) -> float:
    return sum(
        entry[3]
        for (file, _, name), entry in stats.items()
        if file.endswith(filename) and name == function
    )


def run(messages: int) -> None:
    import psycopg

    from bench.common import ADMIN_URL, save_result
    from bench.ingest import (
        _children_cpu_s,
        _count,
        _wait_until_subscribed,
        start_publishers,
        wait_publishers,
        write_topic_files,
    )
    from ingest.mqtt_link import end_session
    from tracefin.embedded import start_mosquitto
    from tracefin.schema import scratch_database
    from tracefin.simulate import register_sim_devices, signed_publications, sim_devices

    work = Path(tempfile.mkdtemp(prefix="tracefin-profile-"))
    broker = start_mosquitto(work / "mosquitto")
    org = "bench-factory"
    try:
        with scratch_database(ADMIN_URL, "tracefin_profile") as database_url:
            with psycopg.connect(database_url, autocommit=True) as conn:
                register_sim_devices(conn, org, seed=org)
            devices = sim_devices(org, seed=org)
            start = datetime.now(UTC) - timedelta(hours=6)
            publications = list(signed_publications(devices, range(messages // 7 + 1), start))[
                :messages
            ]
            files = write_topic_files(publications, work / "messages")
            stats_path = work / "ingest.prof"
            log = work / "ingest.log"
            env = {
                **os.environ,
                "TRACEFIN_DATABASE_URL": database_url,
                "TRACEFIN_MQTT_URL": broker.url,
            }
            worker = subprocess.Popen(
                [sys.executable, __file__, "--worker", str(stats_path)],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            try:
                with psycopg.connect(database_url, autocommit=True) as conn:
                    _wait_until_subscribed(broker.url, conn, log, 1)
                    baseline = _count(conn)
                    before = _children_cpu_s()
                    publishers = start_publishers(broker.url, files)
                    deadline = time.monotonic() + 900
                    while _count(conn) - baseline < len(publications):
                        if time.monotonic() > deadline:
                            raise RuntimeError("the profiled worker did not store every event")
                        time.sleep(0.2)
                    wait_publishers(publishers, before)
            finally:
                worker.terminate()
                worker.wait(120)
                end_session(broker.url, "bench-profile-ingest")
            stats = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    finally:
        broker.stop()

    total = sum(entry[2] for entry in stats.values())
    per_event = 1e6 / len(publications)
    print(f"profiled {len(publications)} events: {total:.1f} CPU s in all threads (under cProfile)")
    print(f"{'stage':56} {'us/event':>9} {'share':>6}")
    figures = {}
    for label, filename, function in STAGES:
        seconds = _find(stats, filename, function)
        figures[label.strip()] = round(seconds * per_event, 1)
        print(f"{label:56} {seconds * per_event:9.1f} {seconds / total:6.1%}")
    print(f"{'all threads':56} {total * per_event:9.1f} {1:6.1%}")
    save_result(
        "profile-ingest",
        {
            "messages": len(publications),
            "cpu_s_all_threads_profiled": round(total, 2),
            "cpu_us_per_event_profiled": {**figures, "all threads": round(total * per_event, 1)},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker_main(args.worker, "bench-profile-ingest")
    else:
        run(args.messages)


if __name__ == "__main__":
    main()
