"""Ingest benchmark: MQTT transport ceiling vs. the real pipeline, same publishers, one run.

The messages are signed first and written to one file per device topic; each file is published
by its own `mosquitto_pub -q 1 -l` (C, one per device topic), so the publisher is not what
limits the rate (the Python simulator publisher was: it capped the "ceiling" at ~2 800 msg/s).

(1) ceiling: those publishers to a bare paho v5 subscriber (QoS 1) that only counts;
(2) pipeline: the same publishers through one `tracefin ingest --processes N` (N = 1, then 2),
    from first publish to last commit;
(3) the ceiling again; the higher ceiling is the baseline;
(4) the signature floor: CPU per event to recover its signer (Keccak + secp256k1, in C), and
    the events/s all cores could reach doing only that, as a ratio to the baseline.
Prints both rates, their ratio, CPU seconds per 1 000 events and peak RSS of each ingest
process, what the publishers, the counting subscriber and the broker used (so a reader can see
that the baseline was not limited by its own tools), and writes them to bench/results/.

    .venv/bin/python bench/ingest.py [--messages 100000] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ADMIN_URL, MAX_LINES_PER_MOSQUITTO_PUB, save_result
from epcis.event_hash import event_hash_digest
from epcis.signatures import parse_signature, recover_address
from epcis.telemetry import sign_telemetry
from ingest.mqtt_link import end_session, new_client, parse_mqtt_url
from records.db import Conn
from tracefin.embedded import start_mosquitto
from tracefin.processes.ingest import worker_client_ids
from tracefin.schema import scratch_database
from tracefin.simulate import (
    Publication,
    Publisher,
    register_sim_devices,
    signed_publications,
    sim_devices,
)

# mosquitto_pub's in-flight window (its default is 20, which leaves it waiting on PUBACKs).
PUBLISHER_INFLIGHT = 200


@dataclass(frozen=True)
class TopicFile:
    topic: str
    path: Path
    messages: int


@dataclass(frozen=True)
class Published:
    """What one publish round took: wall time to the last delivery, and the publishers' CPU."""

    elapsed_s: float
    publishers_cpu_s: float


def write_topic_files(publications: list[Publication], directory: Path) -> list[TopicFile]:
    """Files of one topic's payloads, one per line (orjson writes no newline inside a payload),
    at most MAX_LINES_PER_MOSQUITTO_PUB to a file: each file gets its own publisher."""
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    for publication in publications:
        if b"\n" in publication.payload:
            raise ValueError("a payload with a newline cannot be published line by line")
        by_topic[publication.topic].append(publication.payload)
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for index, (topic, payloads) in enumerate(sorted(by_topic.items())):
        for part, start in enumerate(range(0, len(payloads), MAX_LINES_PER_MOSQUITTO_PUB)):
            lines = payloads[start : start + MAX_LINES_PER_MOSQUITTO_PUB]
            path = directory / f"topic-{index}-{part}.lines"
            path.write_bytes(b"\n".join(lines) + b"\n")
            files.append(TopicFile(topic, path, len(lines)))
    return files


def start_publishers(mqtt_url: str, files: list[TopicFile]) -> list[subprocess.Popen[bytes]]:
    address = parse_mqtt_url(mqtt_url)
    processes = []
    for index, topic_file in enumerate(files):
        argv = [
            "mosquitto_pub",
            "-h",
            address.host,
            "-p",
            str(address.port),
            "-V",
            "5",
            "-q",
            "1",
            "-M",
            str(PUBLISHER_INFLIGHT),
            "-i",
            f"bench-pub-{index}-{secrets.token_hex(3)}",
            "-t",
            topic_file.topic,
            "-l",
        ]
        with topic_file.path.open("rb") as lines:
            processes.append(subprocess.Popen(argv, stdin=lines))
    return processes


def wait_publishers(processes: list[subprocess.Popen[bytes]], cpu_before: float) -> float:
    """Wait for every publisher to exit cleanly; the CPU seconds they used together."""
    for process in processes:
        if process.wait(900) != 0:
            raise RuntimeError(f"mosquitto_pub exited with {process.returncode}")
    return _children_cpu_s() - cpu_before


def _children_cpu_s() -> float:
    # Waited-for children only: the publishers are waited for before any ingest process is.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_ceiling(mqtt_url: str, files: list[TopicFile], broker_pid: int) -> dict[str, float]:
    """Messages/s from the publishers to a paho v5 QoS 1 subscriber that only counts."""
    received = 0
    done = threading.Event()
    total = sum(topic_file.messages for topic_file in files)

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == total:
            done.set()

    subscriber, address = new_client(mqtt_url, f"bench-count-{secrets.token_hex(3)}")
    subscribed = threading.Event()
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscriber.connect(address.host, address.port)
    subscriber.subscribe("tf/+/+/events", qos=1)
    subscriber.loop_start()
    if not subscribed.wait(10):
        raise RuntimeError("the counting subscriber was not subscribed within 10 s")
    broker = psutil.Process(broker_pid)
    broker_before = _cpu_s(broker)
    # This process does nothing else meanwhile: its CPU is the counting subscriber's.
    own_before = time.process_time()
    children_before = _children_cpu_s()
    began = time.perf_counter()
    publishers = start_publishers(mqtt_url, files)
    if not done.wait(900):
        raise RuntimeError(f"ceiling run received {received} of {total}")
    elapsed = time.perf_counter() - began
    subscriber_cpu = time.process_time() - own_before
    broker_cpu = _cpu_s(broker) - broker_before
    publishers_cpu = wait_publishers(publishers, children_before)
    subscriber.disconnect()
    subscriber.loop_stop()
    return {
        "msgs_per_s": total / elapsed,
        "elapsed_s": elapsed,
        "publishers_cpu_s": publishers_cpu,
        "subscriber_cpu_s": subscriber_cpu,
        "broker_cpu_s": broker_cpu,
    }


def measure_c_ceiling(mqtt_url: str, files: list[TopicFile]) -> dict[str, float]:
    """Messages/s from the publishers to `mosquitto_sub -q 1` (C), for comparison only: it shows
    how much of the paho ceiling is the Python subscriber's own cost."""
    total = sum(topic_file.messages for topic_file in files)
    address = parse_mqtt_url(mqtt_url)
    subscriber = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            address.host,
            "-p",
            str(address.port),
            "-V",
            "5",
            "-q",
            "1",
            "-i",
            f"bench-count-c-{secrets.token_hex(3)}",
            "-t",
            "tf/+/+/events",
            "-C",
            str(total),
        ],
        stdout=subprocess.DEVNULL,
    )
    # mosquitto_sub says nothing when it is subscribed: a second on loopback is ample.
    time.sleep(1.0)
    children_before = _children_cpu_s()
    began = time.perf_counter()
    publishers = start_publishers(mqtt_url, files)
    if subscriber.wait(900) != 0:
        raise RuntimeError(f"mosquitto_sub exited with {subscriber.returncode}")
    elapsed = time.perf_counter() - began
    both_cpu = wait_publishers(publishers, children_before)
    return {"msgs_per_s": total / elapsed, "elapsed_s": elapsed, "pub_sub_cpu_s": both_cpu}


def measure_signature_floor(publications: list[Publication], sample: int = 20_000) -> float:
    """CPU microseconds per event to recover the signer of an event's hash (EIP-191 Keccak and
    secp256k1 recovery in C): work every signed event needs, whatever else ingest does."""
    signed = []
    for publication in publications[:sample]:
        envelope = orjson.loads(publication.payload)
        if isinstance(envelope, dict) and "sig" in envelope:
            digest = event_hash_digest(envelope["event"])  # as the simulator signed it
            signed.append((digest, parse_signature(envelope["sig"])))
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for digest, signature in signed:
            recover_address(digest, signature)
        best = min(best, time.process_time() - began)
    return best / len(signed) * 1e6


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class PipelineRun:
    workers: int
    events_per_s: float
    elapsed_s: float
    publishers_cpu_s: float
    broker_cpu_s: float
    # Per ingest process, in the timed window: CPU seconds, events it stored, peak RSS.
    cpu_s: list[float]
    stored: list[int]
    peak_rss_mib: list[float]


def measure_pipeline(
    mqtt_url: str,
    database_url: str,
    files: list[TopicFile],
    workers: int,
    log_dir: Path,
    broker_pid: int,
) -> PipelineRun:
    """One `tracefin ingest --processes N`, publish -> committed, with its workers' CPU."""
    env = {**os.environ, "TRACEFIN_DATABASE_URL": database_url, "TRACEFIN_MQTT_URL": mqtt_url}
    log = log_dir / f"ingest-{workers}.log"
    ingest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracefin.cli",
            "ingest",
            "--processes",
            str(workers),
            "--client-id",
            "bench-ingest",
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    total = sum(topic_file.messages for topic_file in files)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            _wait_until_subscribed(mqtt_url, conn, log, workers)
            baseline = _count(conn)
            # With one process the command is the worker; with more, its children are.
            parent = psutil.Process(ingest.pid)
            watched = parent.children() if workers > 1 else [parent]
            if len(watched) != workers:
                raise RuntimeError(f"{len(watched)} ingest worker processes for {workers}")
            cpu_before = [_cpu_s(process) for process in watched]
            broker = psutil.Process(broker_pid)
            broker_before = _cpu_s(broker)
            children_before = _children_cpu_s()
            began = time.perf_counter()
            publishers = start_publishers(mqtt_url, files)
            deadline = time.monotonic() + 900
            # Counted every 0.2 s: counting more often would take CPU from the pipeline.
            while (stored := _count(conn) - baseline) < total:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pipeline stored {stored} of {total}")
                time.sleep(0.2)
            elapsed = time.perf_counter() - began
            cpu = [
                _cpu_s(process) - before
                for process, before in zip(watched, cpu_before, strict=True)
            ]
            broker_cpu = _cpu_s(broker) - broker_before
            publishers_cpu = wait_publishers(publishers, children_before)
            if stored != total:
                raise RuntimeError(f"stored {stored} events for {total} published")
        rss = [_peak_rss_mib(process.pid) for process in watched]
    finally:
        ingest.terminate()
        ingest.wait(90)
        for client_id in worker_client_ids("bench-ingest", workers):
            end_session(mqtt_url, client_id)
    return PipelineRun(
        workers=workers,
        events_per_s=total / elapsed,
        elapsed_s=elapsed,
        publishers_cpu_s=publishers_cpu,
        broker_cpu_s=broker_cpu,
        cpu_s=cpu,
        stored=_stored_by(log),
        peak_rss_mib=rss,
    )


def _stored_by(log: Path) -> list[int]:
    """Events each worker stored, from the metrics it logs when it stops (in the order they
    stopped, which need not be the order of the CPU figures)."""
    marker = "ingest worker stopped: "
    return [
        int(ast.literal_eval(line.split(marker, 1)[1].strip()).get("stored", 0))
        for line in log.read_text(errors="replace").splitlines()
        if marker in line
    ]


def _wait_until_subscribed(mqtt_url: str, conn: Conn, log: Path, workers: int) -> None:
    """Wait until every worker says in `log` it is subscribed, then until one has stored a
    throwaway telemetry sample (its pool and caches are warm)."""
    deadline = time.monotonic() + 60
    while log.read_text(errors="replace").count("MQTT subscribed to") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("not every ingest worker subscribed within 60 s")
        time.sleep(0.2)
    org = "bench-factory"
    warmup = Publisher(mqtt_url, f"bench-warmup-{secrets.token_hex(3)}")
    sample = {"time": datetime.now(UTC).isoformat(), "readings": {"warmup": 1}}
    # wh-1 has a key (register_sim_devices, seed = org), so it signs its telemetry.
    signed = json.dumps(sign_telemetry(sim_devices(org, seed=org)["wh-1"].private_key, sample))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        warmup.publish(Publication(f"tf/{org}/wh-1/telemetry", signed.encode()))
        time.sleep(0.5)
        if conn.execute("SELECT 1 FROM telemetry WHERE metric = 'warmup'").fetchone():
            warmup.close()
            return
    raise RuntimeError("no ingest worker came up within 60 s")


def run_all(
    args: argparse.Namespace, database_url: str, mqtt_url: str, work: Path, broker_pid: int
) -> None:
    """Prepare the messages, then ceiling, pipeline runs, ceiling again; save the figures."""
    org = "bench-factory"
    with psycopg.connect(database_url, autocommit=True) as conn:
        register_sim_devices(conn, org, seed=org)
    devices = sim_devices(org, seed=org)
    began = time.perf_counter()
    start = datetime.now(UTC) - timedelta(hours=6)
    products = range(args.messages // 7 + 1)
    publications = list(signed_publications(devices, products, start))[: args.messages]
    files = write_topic_files(publications, work / "messages")
    print(
        f"prepared {len(publications)} signed messages in {time.perf_counter() - began:.1f}s,"
        f" {len(files)} topics, one mosquitto_pub -q 1 -l each"
    )

    # The ceiling is measured before and after the pipeline runs and the higher one is the
    # baseline: on a shared machine that keeps a lucky pipeline run from looking better.
    ceilings = [measure_ceiling(mqtt_url, files, broker_pid)]
    _print_ceiling(ceilings[0], "before")
    c_ceiling = measure_c_ceiling(mqtt_url, files)
    print(
        f"C subscriber      : {c_ceiling['msgs_per_s']:9.0f} msg/s (mosquitto_pub ->"
        f" mosquitto_sub -q 1, for comparison; {c_ceiling['elapsed_s']:.1f}s)"
    )
    runs = []
    for workers in args.processes:
        # A fresh event table per run, so later runs do not just find duplicates.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("TRUNCATE events, telemetry, log_queue")
        run = measure_pipeline(mqtt_url, database_url, files, workers, work, broker_pid)
        runs.append(run)
        per_1000 = sum(run.cpu_s) / sum(run.stored) * 1000 if sum(run.stored) else float("nan")
        print(
            f"ingest pipeline   : {run.events_per_s:9.0f} events/s (publish -> committed,"
            f" {workers} worker process(es), {run.elapsed_s:.1f}s)"
        )
        print(
            f"  per process     : CPU {', '.join(f'{c:.1f}' for c in run.cpu_s)} s,"
            f" stored {', '.join(str(s) for s in run.stored)} events,"
            f" CPU s per 1000 events {per_1000:.2f} (each process's mean),"
            f" peak RSS {', '.join(f'{r:.0f}' for r in run.peak_rss_mib)} MiB"
        )
        print(f"  publishers CPU {run.publishers_cpu_s:.1f} s, broker CPU {run.broker_cpu_s:.1f} s")
    ceilings.append(measure_ceiling(mqtt_url, files, broker_pid))
    _print_ceiling(ceilings[1], "after")
    baseline = max(ceiling["msgs_per_s"] for ceiling in ceilings)
    print(f"baseline (higher ceiling): {baseline:.0f} msg/s")
    for run in runs:
        print(f"ratio, {run.workers} worker process(es) : {run.events_per_s / baseline:.2f}")
    # What the cores could do if recovering each event's signer were all there was to do.
    floor_us = measure_signature_floor(publications)
    cores = os.cpu_count() or 1
    floor_rate = cores * 1e6 / floor_us
    print(
        f"signature floor   : {floor_us:.1f} µs of CPU per event to recover its signer; {cores}"
        f" cores doing nothing else could take {floor_rate:.0f} events/s, which is"
        f" {floor_rate / baseline:.2f} of the baseline"
    )
    save_result(
        "ingest",
        {
            "messages": len(publications),
            "publisher": f"mosquitto_pub -q 1 -l -M {PUBLISHER_INFLIGHT}, one per topic",
            "topics": len(files),
            "ceilings": [
                {key: round(value, 2) for key, value in ceiling.items()} for ceiling in ceilings
            ],
            "baseline_msgs_per_s": round(baseline),
            "c_subscriber": {key: round(value, 2) for key, value in c_ceiling.items()},
            "runs": [
                {
                    "workers": run.workers,
                    "events_per_s": round(run.events_per_s),
                    "ratio": round(run.events_per_s / baseline, 3),
                    "elapsed_s": round(run.elapsed_s, 2),
                    "cpu_s": [round(c, 2) for c in run.cpu_s],
                    "stored": run.stored,
                    "cpu_s_per_1000_events": round(sum(run.cpu_s) / sum(run.stored) * 1000, 3),
                    "peak_rss_mib": [round(r, 1) for r in run.peak_rss_mib],
                    "publishers_cpu_s": round(run.publishers_cpu_s, 2),
                    "broker_cpu_s": round(run.broker_cpu_s, 2),
                }
                for run in runs
            ],
            "lost": 0,
            "signature_floor": {
                "us_per_event": round(floor_us, 2),
                "cores": cores,
                "max_events_per_s": round(floor_rate),
                "ratio_to_baseline": round(floor_rate / baseline, 3),
            },
        },
    )


def _print_ceiling(ceiling: dict[str, float], when: str) -> None:
    print(
        f"transport ceiling : {ceiling['msgs_per_s']:9.0f} msg/s ({when}; mosquitto_pub ->"
        f" counting paho subscriber, {ceiling['elapsed_s']:.1f}s, subscriber busy"
        f" {ceiling['subscriber_cpu_s'] / ceiling['elapsed_s']:.0%} of a core; CPU s: publishers"
        f" {ceiling['publishers_cpu_s']:.1f}, subscriber {ceiling['subscriber_cpu_s']:.1f},"
        f" broker {ceiling['broker_cpu_s']:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="`tracefin ingest --processes N` runs to make, one per N",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tracefin-bench-"))
    broker = start_mosquitto(work / "mosquitto")
    with scratch_database(ADMIN_URL, "tracefin_bench") as database_url:
        try:
            run_all(args, database_url, broker.url, work, broker.process.pid)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
