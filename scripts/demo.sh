#!/usr/bin/env bash
# `make demo` until `tracefin up` exists: migrations, one ingest worker and the simulated
# factory against the local PostgreSQL and a private Mosquitto; prints what got stored.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export TRACEFIN_DATABASE_URL=${TRACEFIN_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/tracefin}
work=.tracefin/demo
mkdir -p "$work"

admin_url=${TRACEFIN_DATABASE_URL%/*}/postgres
db_name=${TRACEFIN_DATABASE_URL##*/}
"$BIN/python" - "$admin_url" "$db_name" <<'PY'
import sys, psycopg
from psycopg import sql
admin, name = sys.argv[1], sys.argv[2]
with psycopg.connect(admin, autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
PY
"$BIN/tracefin" db migrate

if [[ -z "${TRACEFIN_MQTT_URL:-}" ]]; then
  port=$("$BIN/python" -c 'from tracefin.services import free_port; print(free_port())')
  "$BIN/python" - "$work/mosquitto" "$port" <<'PY' &
import sys, signal, time
from pathlib import Path
from tracefin.services import start_mosquitto
broker = start_mosquitto(Path(sys.argv[1]).resolve(), int(sys.argv[2]))
signal.signal(signal.SIGTERM, lambda *a: (broker.stop(), sys.exit(0)))
while True:
    time.sleep(1)
PY
  broker_pid=$!
  export TRACEFIN_MQTT_URL="mqtt://127.0.0.1:$port"
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.2; done
  echo "Mosquitto (private, tracefin settings) on $TRACEFIN_MQTT_URL"
fi

"$BIN/tracefin" ingest --client-id demo-ingest &
ingest_pid=$!
cleanup() { kill "$ingest_pid" 2>/dev/null || true; wait "$ingest_pid" 2>/dev/null || true;
            [[ -n "${broker_pid:-}" ]] && kill "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT
sleep 2

echo "Simulated factory: 20 products through manufacturing, inspection, storage, shipping, sale"
"$BIN/tracefin" simulate --org demo-factory --products 20 --rate 100
sleep 1
psql_query() { "$BIN/python" -c "
import os, psycopg
with psycopg.connect(os.environ['TRACEFIN_DATABASE_URL']) as c:
    for row in c.execute('''$1'''): print(*row, sep='  ')"; }
echo
echo "Stored events by lifecycle stage:"
psql_query "SELECT coalesce(stage, '-'), biz_step, count(*) FROM events GROUP BY 1, 2 ORDER BY min(ingest_seq)"
echo "Telemetry readings: $(psql_query 'SELECT count(*) FROM telemetry')"
echo "Dead letters: $(psql_query 'SELECT count(*) FROM dead_letters')"
echo
echo "Not there yet: anchoring on the devnet, finance decisions, the provenance pages and API,"
echo "and 'tracefin up'. They arrive with the ledger, finance, API and run issues."
