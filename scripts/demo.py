"""`make demo` until `tracefin up` exists: every worker against local services, a simulated
factory, then what a consumer, a financier and an auditor would check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from finance import service  # noqa: E402
from ledger import log_store, registry_store  # noqa: E402
from ledger.chain import connect  # noqa: E402
from ledger.db import migrate  # noqa: E402
from ledger.deployment import ensure_deployment  # noqa: E402
from ledger.event_hash import hash_id_from_digest  # noqa: E402
from ledger.proofs import build_bundle  # noqa: E402
from ledger.verify import verify_bundle  # noqa: E402
from tracefin.services import start_anvil, start_mosquitto  # noqa: E402
from tracefin.settings import DEVNET_PRIVATE_KEY  # noqa: E402
from tracefin.simulate import WAREHOUSE_GLN, gtin_for  # noqa: E402

DATABASE_URL = os.environ.get(
    "TRACEFIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/tracefin"
)
ORG, BANK, PRODUCTS = "demo-factory", "demo-bank", 20
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
WORK = ROOT / ".tracefin" / "demo"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def ensure_database() -> None:
    admin = psycopg.conninfo.make_conninfo(DATABASE_URL, dbname="postgres")
    name = psycopg.conninfo.conninfo_to_dict(DATABASE_URL)["dbname"]
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
    migrate(DATABASE_URL)


def spawn(args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (WORK / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tracefin.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    say(f"PostgreSQL: {DATABASE_URL}")
    ensure_database()
    broker = start_mosquitto(WORK / "mosquitto")
    chain_node = start_anvil()
    print(f"Mosquitto on {broker.url}, anvil on {chain_node.url} (private, this demo only)")
    env = {
        **os.environ,
        "TRACEFIN_DATABASE_URL": DATABASE_URL,
        "TRACEFIN_MQTT_URL": broker.url,
        "TRACEFIN_CHAIN_RPC_URL": chain_node.url,
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            deployment = ensure_deployment(conn, connect(chain_node.url), DEVNET_PRIVATE_KEY)
            print(
                f"TraceAnchor {deployment.deployment.anchor_address},"
                f" PledgeRegistry {deployment.deployment.pledge_address}"
            )
            setup_finance(conn)
        workers = [
            spawn(["ingest", "--client-id", "demo-ingest"], env, "ingest"),
            spawn(["anchor"], env, "anchor"),
            spawn(["finance"], env, "finance"),
        ]
        time.sleep(3)
        say(f"Simulated factory: {PRODUCTS} lots through all five stages, signed devices, MQTT")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracefin.cli",
                "simulate",
                "--org",
                ORG,
                "--products",
                str(PRODUCTS),
                "--rate",
                "200",
            ],
            env=env,
            check=True,
        )
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            report(conn, chain_node.url)
        print(
            f"\nWorker logs: {WORK}/*.log. Not there yet: the HTTP API, the provenance pages"
            " and `tracefin up` (they arrive with the API and run issues)."
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
        chain_node.stop()
        broker.stop()


def setup_finance(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    if registry_store.get_org(conn, BANK) is None:
        registry_store.add_org(conn, BANK, "financier")
    if registry_store.get_org(conn, ORG) is None:
        registry_store.add_org(conn, ORG, "manufacturer")
    for number in range(PRODUCTS):
        service.add_product(
            conn,
            ORG,
            gtin_for(number),
            f"Frozen dumplings #{number}",
            "frozen",
            "12.50",
            "CNY",
            "-25",
            "-15",
        )
    service.add_warehouse(conn, ORG, WAREHOUSE, "Demo cold store")
    service.supervise(conn, BANK, WAREHOUSE)
    service.open_line(conn, BANK, ORG, "5000.00", "CNY")


def report(conn: psycopg.Connection[tuple[object, ...]], rpc_url: str) -> None:
    deployment = log_store.current_deployment(conn)
    assert deployment is not None
    total = conn.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + 30
    while log_store.anchored_end(conn, deployment.id) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    say("Stored events by lifecycle stage")
    for stage, step, count in conn.execute(
        "SELECT coalesce(stage, '-'), biz_step, count(*) FROM events GROUP BY 1, 2"
        " ORDER BY min(ingest_seq)"
    ).fetchall():
        print(f"  {stage:20} {step:16} {count}")
    print(
        f"  anchored: {log_store.anchored_end(conn, deployment.id)} of {total} events in"
        f" {log_store.batch_count(conn, deployment.id)} batches"
    )
    digest = conn.execute("SELECT event_hash FROM events ORDER BY ingest_seq LIMIT 1").fetchone()
    assert digest is not None
    bundle = build_bundle(conn, bytes(digest[0]))
    say("A consumer's check: the first event's proof bundle, verified with only the chain")
    print(json.dumps(bundle, indent=2)[:600] + " …")
    print(f"  verify: {verify_bundle(bundle, connect(rpc_url)).as_json()}")
    say("A financier's view: the lot of product 0 (shipped and sold in the simulation)")
    lot = f"https://id.gs1.org/01/{gtin_for(0)}/10/L0000000"
    print(json.dumps(service.lot_status(conn, lot, BANK), indent=2, default=str)[:900] + " …")
    say("tracefin audit")
    audit = subprocess.run(
        [sys.executable, "-m", "tracefin.cli", "audit"],
        env={
            **os.environ,
            "TRACEFIN_DATABASE_URL": DATABASE_URL,
            "TRACEFIN_CHAIN_RPC_URL": rpc_url,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    print(audit.stdout.strip()[:400])
    print(f"  hash id of that event: {hash_id_from_digest(bytes(digest[0]))}")


if __name__ == "__main__":
    main()
