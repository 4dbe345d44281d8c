"""The routes' FastAPI dependencies, as `Annotated` aliases: connection, config, chain, caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from psycopg_pool import ConnectionPool

from api import auth
from api.config import ApiConfig, ReadinessProbes
from api.errors import Problem
from api.middleware import Metrics
from finance.store.journal import Journal
from ledger.chain import Chain, connect
from ledger.chain_confirmations import BatchConfirmations
from ledger.deployment import current_chain
from ledger.page_cache import PageCache
from records.db import Conn
from records.registry_store import Org


def _pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.pool
    return pool


def _config(request: Request) -> ApiConfig:
    config: ApiConfig = request.app.state.config
    return config


def _page_cache(request: Request) -> PageCache:
    cache: PageCache = request.app.state.page_cache
    return cache


def _confirmations(request: Request) -> BatchConfirmations:
    confirmations: BatchConfirmations = request.app.state.batch_confirmations
    return confirmations


def _probes(request: Request) -> ReadinessProbes:
    probes: ReadinessProbes = request.app.state.probes
    return probes


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


Pool = Annotated[ConnectionPool, Depends(_pool)]
Config = Annotated[ApiConfig, Depends(_config)]
Pages = Annotated[PageCache, Depends(_page_cache)]
Confirmations = Annotated[BatchConfirmations, Depends(_confirmations)]
Probes = Annotated[ReadinessProbes, Depends(_probes)]
ApiMetrics = Annotated[Metrics, Depends(_metrics)]


def _connection(pool: Pool) -> Iterator[Conn]:
    """One pooled connection per request (autocommit), shared by the route and the key check."""
    with pool.connection() as conn:
        yield conn


# Given back when the route returns, before the response is sent: a slow client must not hold
# a connection of the pool.
DbConn = Annotated[Conn, Depends(_connection, scope="function")]


def _journal(config: Config) -> Journal:
    return Journal(config.journal_key)


# The finance journal, sealed with the server's key.
FinanceJournal = Annotated[Journal, Depends(_journal)]


def _current_chain(conn: DbConn, config: Config) -> Chain:
    """The contracts of the current deployment, signing with the server's key; 503 without."""
    chain = (
        current_chain(conn, connect(config.chain_rpc_url), config.chain_key)
        if config.chain_rpc_url is not None
        else None
    )
    if chain is None:
        raise Problem(503, "no_chain", "no chain endpoint or no contracts deployed")
    return chain


CurrentChain = Annotated[Chain, Depends(_current_chain)]


def _principal(
    conn: DbConn,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(auth.bearer)],
) -> Org:
    return auth.caller(conn, credentials)


def _role(*roles: str) -> Callable[[Org], Org]:
    def check(org: Annotated[Org, Depends(_principal)]) -> Org:
        return auth.check_role(org, roles)

    return check


AnyOrg = Annotated[Org, Depends(_principal)]
Enterprise = Annotated[Org, Depends(_role(*auth.ENTERPRISE))]
Financier = Annotated[Org, Depends(_role(*auth.FINANCIER))]
Regulator = Annotated[Org, Depends(_role(*auth.REGULATOR))]
Guarantor = Annotated[Org, Depends(_role(*auth.GUARANTOR))]
# Those who oversee lending: each financier over its own lines, the regulator over all.
Oversight = Annotated[Org, Depends(_role(*auth.FINANCIER, *auth.REGULATOR))]
