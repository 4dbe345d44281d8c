#!/usr/bin/env bash
# Make sure PostgreSQL answers for the tests and the demo: use TRACEFIN_TEST_DATABASE_URL /
# TRACEFIN_DATABASE_URL when set, else the local server on 127.0.0.1:5432, starting the
# machine's cluster if it is installed but stopped.
set -euo pipefail

if [[ -n "${TRACEFIN_TEST_DATABASE_URL:-}${TRACEFIN_DATABASE_URL:-}" ]]; then
  exit 0
fi
port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "PostgreSQL is not running; starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 50); do port_open 5432 && break; sleep 0.2; done
  fi
fi
if ! port_open 5432; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started here;" \
       "install it or set TRACEFIN_TEST_DATABASE_URL (tests that need it will be skipped)" >&2
fi
exit 0
