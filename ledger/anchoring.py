"""The anchor leader: positions queued events in the log and anchors batches of them on chain.

Exactly once, whatever crashes: positions are committed before a batch is sent, and on start (or
after any surprise) the contract's next position is taken as the truth and reconciled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from ledger import log_store, merkle
from ledger.chain import (
    Chain,
    ChainError,
    ChainReverted,
    SentBatch,
    code_hash,
    connect,
    identity,
)
from ledger.log_store import Deployment
from records.db import Conn, run_connected

log = logging.getLogger(__name__)

WORKER = "anchor"
# Any constant works; every anchor process must use the same one.


class DevnetReset(Exception):
    """The chain is no longer the one the current deployment was recorded on."""


class LogDiverged(Exception):
    """The chain holds a batch whose root does not match our log: stop, a human must look."""


@dataclass(frozen=True)
class AnchorConfig:
    batch_size: int
    batch_max_wait: timedelta
    identity_check_every: timedelta = timedelta(seconds=5)
    receipt_timeout: timedelta = timedelta(seconds=30)
    # Positions per transaction, and how long one step may keep positioning a backlog before
    # it anchors a batch: positioning must outpace ingest, not one chunk per chain round trip.
    position_chunk: int = 20_000
    position_budget: timedelta = timedelta(milliseconds=500)


class AnchorWorker:
    """One leader at a time (a PostgreSQL advisory lock); the others wait to take over."""

    def __init__(
        self, database_url: str, rpc_url: str, private_key: str, config: AnchorConfig
    ) -> None:
        self._database_url = database_url
        self._rpc_url = rpc_url
        self._private_key = private_key
        self._config = config
        self._stop = threading.Event()
        self.batches_anchored = 0

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Wait for leadership, lead until stopped or the lock connection is lost, repeat."""
        run_connected(self._database_url, self._stop, self._lead_when_elected, "anchor")

    def _lead_when_elected(self, lock_conn: Conn) -> None:
        if self._acquire(lock_conn):
            log.info("anchor: this process is the leader")
            self._lead(lock_conn)

    def _acquire(self, lock_conn: Conn) -> bool:
        while not self._stop.is_set():
            if log_store.try_anchor_leadership(lock_conn):
                return True
            self._stop.wait(1.0)
        return False

    def _lead(self, lock_conn: Conn) -> None:
        with psycopg.connect(self._database_url, autocommit=True) as conn:
            state = _LeaderState(conn, self._rpc_url, self._private_key, self._config)
            backoff = 0.5
            while not self._stop.is_set():
                log_store.ping(lock_conn)  # a lost lock connection means lost leadership
                try:
                    anchored = state.step()
                    backoff = 0.5
                    self.batches_anchored += anchored
                    if not anchored:
                        self._stop.wait(0.05)
                except ChainError as exc:
                    state.chain_trouble(str(exc))
                    log.warning("anchor: chain unavailable (%s); retrying in %.1fs", exc, backoff)
                    self._position_while_waiting(state, backoff)
                    backoff = min(backoff * 2, 10.0)
                except DevnetReset as exc:
                    # Logged first: whoever sees the state (an operator, a test) finds the line.
                    log.error(
                        "anchor: DEVNET RESET: %s. Anchoring stopped; earlier proofs cannot be"
                        " verified on this chain. Run `tracefin chain deploy` to anchor the log"
                        " again from position 0.",
                        exc,
                    )
                    log_store.report_status(conn, WORKER, "devnet_reset", str(exc))
                    self._position_while_waiting(state, 10.0)
                except LogDiverged as exc:
                    log.error("anchor: LOG DIVERGED FROM CHAIN: %s. Anchoring stopped.", exc)
                    log_store.report_status(conn, WORKER, "diverged", str(exc))
                    self._position_while_waiting(state, 10.0)

    def _position_while_waiting(self, state: _LeaderState, seconds: float) -> None:
        """Wait for the chain, but keep giving new events log positions meanwhile.

        Positions need no chain, and the finance worker follows the log by position: it must
        keep watching pledged goods while the chain is down.
        """
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            state.assign_positions()
            self._stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))


class _LeaderState:
    """The leader's view of one deployment; rebuilt whenever the deployment changes."""

    def __init__(
        self,
        conn: Conn,
        rpc_url: str,
        private_key: str,
        config: AnchorConfig,
    ) -> None:
        self._conn = conn
        self._w3 = connect(rpc_url, timeout=config.receipt_timeout.total_seconds())
        self._private_key = private_key
        self._config = config
        self._deployment: Deployment | None = None
        self._chain: Chain | None = None
        self._checked_at = 0.0
        self._reconciled = False
        self._pending_since: float | None = None

    def chain_trouble(self, detail: str) -> None:
        self._reconciled = False  # a timeout may hide a mined batch: look again first
        log_store.report_status(self._conn, WORKER, "chain_unavailable", detail)

    def assign_positions(self) -> int:
        """Position queued events until the queue is empty or the step's budget is spent.

        A chunk per transaction, so a crash between chunks loses or repeats nothing; at least
        one chunk per call, however small the budget.
        """
        deadline = time.monotonic() + self._config.position_budget.total_seconds()
        chunk = self._config.position_chunk
        total = 0
        while True:
            moved = log_store.assign_positions(self._conn, chunk)
            total += moved
            if moved < chunk or time.monotonic() >= deadline:
                return total

    def step(self) -> int:
        """Do one unit of work; returns the number of batches anchored (0 means idle)."""
        self.assign_positions()  # first: positions need no chain (see _position_while_waiting)
        chain, deployment = self._checked_chain()
        if not self._reconciled:
            self._reconcile(chain, deployment)
            self._reconciled = True
            log_store.report_status(self._conn, WORKER, "anchoring", "reconciled with chain")
        first = log_store.anchored_end(self._conn, deployment.id)
        pending = log_store.log_size(self._conn) - first
        if pending <= 0:
            self._pending_since = None
            return 0
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
        waited = now - self._pending_since
        if (
            pending < self._config.batch_size
            and waited < self._config.batch_max_wait.total_seconds()
        ):
            return 0
        count = min(pending, self._config.batch_size)
        self._anchor(chain, deployment, first, count)
        self._pending_since = now if pending > count else None
        return 1

    def _anchor(self, chain: Chain, deployment: Deployment, first: int, count: int) -> None:
        try:
            sent = anchor_range(self._conn, chain, deployment.id, first, count)
        except ChainReverted as exc:
            if exc.error == "UnexpectedFirstIndex":
                # Someone (an earlier life of this leader) anchored already: reconcile.
                self._reconciled = False
                return
            raise
        log.info(
            "anchor: batch %d = positions %d..%d in block %d",
            sent.batch_id,
            first,
            first + count - 1,
            sent.block_number,
        )

    def _reconcile(self, chain: Chain, deployment: Deployment) -> None:
        """Make the recorded batches agree with the contract, the source of truth."""
        chain_next = chain.next_index()
        recorded_end = log_store.anchored_end(self._conn, deployment.id)
        if chain_next < recorded_end:
            raise DevnetReset(
                f"contract's next position is {chain_next} but batches up to {recorded_end}"
                " were recorded"
            )
        recorded = log_store.batch_count(self._conn, deployment.id)
        for batch_id in range(recorded, chain.batch_count()):
            on_chain = chain.batch(batch_id)
            try:
                digests = log_store.entries(self._conn, on_chain.first_index, on_chain.count)
            except LookupError as exc:
                raise LogDiverged(f"batch {batch_id} on chain covers unknown positions") from exc
            if merkle.root(digests) != on_chain.root:
                raise LogDiverged(f"batch {batch_id} on chain has a root our log does not give")
            found = chain.batch_anchored_tx(batch_id, deployment.deployed_block)
            if found is None:
                raise ChainError(f"no BatchAnchored log for batch {batch_id} yet")
            tx_hash, block_number = found
            log_store.record_batch(
                self._conn,
                deployment.id,
                batch_id=batch_id,
                first_index=on_chain.first_index,
                count=on_chain.count,
                root=on_chain.root,
                tx_hash=tx_hash,
                block_number=block_number,
            )
            log.warning(
                "anchor: recorded batch %d found on chain but not in the database", batch_id
            )

    def _checked_chain(self) -> tuple[Chain, Deployment]:
        """The current deployment, verified against the chain every few seconds."""
        now = time.monotonic()
        if (
            self._chain is not None
            and self._deployment is not None
            and now - self._checked_at < self._config.identity_check_every.total_seconds()
        ):
            return self._chain, self._deployment
        deployment = log_store.current_deployment(self._conn)
        if deployment is None:
            raise DevnetReset("no contracts deployed yet (run `tracefin chain deploy`)")
        seen = identity(self._w3)
        if (seen.chain_id, seen.genesis_hash) != (deployment.chain_id, deployment.genesis_hash):
            raise DevnetReset(
                f"chain id {seen.chain_id} / genesis 0x{seen.genesis_hash.hex()[:12]}… is not"
                f" the recorded {deployment.chain_id} / 0x{deployment.genesis_hash.hex()[:12]}…"
            )
        if code_hash(self._w3, deployment.anchor_address) != deployment.anchor_code_hash:
            raise DevnetReset(f"TraceAnchor code at {deployment.anchor_address} has changed")
        if self._deployment is None or self._deployment.id != deployment.id:
            self._chain = Chain(
                self._w3,
                deployment.anchor_address,
                deployment.pledge_address,
                self._private_key,
                receipt_timeout=self._config.receipt_timeout.total_seconds(),
            )
            self._deployment = deployment
            self._reconciled = False
        self._checked_at = now
        assert self._chain is not None
        return self._chain, deployment


def anchor_range(conn: Conn, chain: Chain, deployment_id: int, first: int, count: int) -> SentBatch:
    """Anchor log positions [first, first + count) as one batch and record it."""
    digests = log_store.entries(conn, first, count)
    root = merkle.root(digests)
    sent = chain.anchor_batch(first, count, root)
    log_store.record_batch(
        conn,
        deployment_id,
        batch_id=sent.batch_id,
        first_index=first,
        count=count,
        root=root,
        tx_hash=sent.tx_hash,
        block_number=sent.block_number,
    )
    return sent


def anchor_everything(conn: Conn, chain: Chain, deployment_id: int) -> int:
    """Position every queued event and anchor the whole unanchored log in one batch.

    What the leader does over many steps, at once: for tests, benchmarks and demos.
    """
    while log_store.assign_positions(conn, 100_000):
        pass
    first = log_store.anchored_end(conn, deployment_id)
    count = log_store.log_size(conn) - first
    if count:
        anchor_range(conn, chain, deployment_id, first, count)
    return count
