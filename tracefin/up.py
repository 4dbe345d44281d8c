"""`tracefin up`: start what the settings do not point elsewhere, then every worker, supervised."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from types import FrameType

import psycopg
from psycopg.conninfo import conninfo_to_dict

from finance.pledges import deploy_and_restore
from finance.store.journal import Journal
from ingest.mqtt_link import parse_mqtt_url
from ledger.chain import ChainError, connect
from tracefin.demo import start_demo
from tracefin.embedded import (
    ServiceUnavailable,
    free_port,
    port_open,
    start_anvil,
    start_mosquitto,
)
from tracefin.schema import migrate, set_policies
from tracefin.settings import Settings
from tracefin.supervisor import Endpoints, Say, Supervisor, Teardown, UpError, Worker

DEFAULT_MQTT_PORT = 1883
DEFAULT_CHAIN_PORT = 8545


def _redacted(database_url: str) -> str:
    parts = conninfo_to_dict(database_url)
    where = parts.get("host") or "localhost"
    return f"{where}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def find_database(settings: Settings, home: Path, teardown: Teardown, say: Say) -> str:
    """TRACEFIN_DATABASE_URL if set and reachable, else an embedded server under `home`."""
    if settings.database_url is not None:
        try:
            psycopg.connect(settings.database_url, connect_timeout=5).close()
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
            raise UpError(
                f"cannot reach PostgreSQL at TRACEFIN_DATABASE_URL"
                f" ({_redacted(settings.database_url)}: {first_line}); start it or fix the URL"
            ) from None
        say(f"postgres   {_redacted(settings.database_url)} (TRACEFIN_DATABASE_URL) ... ready")
        return settings.database_url
    # pgserver narrates every command it runs at INFO; `up` says what matters itself.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        from pgserver import get_server  # type: ignore[attr-defined]
    except ImportError:
        raise UpError(
            "no TRACEFIN_DATABASE_URL and the embedded server (pgserver) is not installed:"
            " run `make bootstrap`, or set TRACEFIN_DATABASE_URL"
        ) from None
    data = home / "pgdata"
    fresh = not (data / "PG_VERSION").exists()
    say(f"postgres   embedded (pgserver), data in {data}{' (new)' if fresh else ''} ...")
    try:
        server = get_server(data, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain exceptions
        raise UpError(
            f"the embedded PostgreSQL did not start ({exc}); see {data / 'log'}"
        ) from None
    teardown.add("postgres", server.cleanup)
    url: str = server.get_uri()
    say("postgres   ready")
    return url


def find_broker(settings: Settings, home: Path, teardown: Teardown, say: Say) -> str:
    """TRACEFIN_MQTT_URL if set and reachable, else a Mosquitto of our own."""
    if settings.mqtt_url is not None:
        address = parse_mqtt_url(settings.mqtt_url)
        if not port_open(address.host, address.port, timeout=5):
            raise UpError(
                f"nothing answers at TRACEFIN_MQTT_URL ({address.host}:{address.port});"
                " start the broker or fix the URL"
            )
        say(f"mqtt       {address.host}:{address.port} (TRACEFIN_MQTT_URL) ... ready")
        return settings.mqtt_url
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        # A pure-Python broker (amqtt) speaks only MQTT 3.1.1; tracefin's workers need MQTT 5
        # (shared subscriptions, session expiry, receive maximum).
        raise UpError(
            "no MQTT broker: install Mosquitto (apt-get install mosquitto, brew install"
            " mosquitto) or set TRACEFIN_MQTT_URL to an MQTT 5 broker"
        )
    port = _preferred_port(DEFAULT_MQTT_PORT)
    say(f"mqtt       mosquitto on 127.0.0.1:{port}, data in {home / 'mosquitto'} ...")
    try:
        broker = start_mosquitto(home / "mosquitto", port)
    except ServiceUnavailable as exc:
        raise UpError(f"mosquitto did not start: {exc}") from None
    teardown.add("mosquitto", broker.stop)
    say("mqtt       ready")
    return broker.url


def find_chain(settings: Settings, home: Path, teardown: Teardown, say: Say) -> str:
    """TRACEFIN_CHAIN_RPC_URL if set and reachable, else anvil with its state kept under `home`."""
    if settings.chain_rpc_url is not None:
        try:
            chain_id = connect(settings.chain_rpc_url).eth.chain_id
        except Exception:  # web3 raises many kinds for "not there"
            raise UpError(
                f"no chain answers at TRACEFIN_CHAIN_RPC_URL ({settings.chain_rpc_url});"
                " start the node or fix the URL"
            ) from None
        say(f"chain      {settings.chain_rpc_url} (chain id {chain_id}) ... ready")
        return settings.chain_rpc_url
    port = _preferred_port(DEFAULT_CHAIN_PORT)
    state = home / "anvil-state.json"
    say(f"chain      anvil on 127.0.0.1:{port}, state in {state} ...")
    try:
        node = start_anvil(port, state_file=state)
    except ServiceUnavailable as exc:
        if shutil.which("node") is None:
            raise UpError(
                "Node.js is not installed: install Node.js 20 and run `make bootstrap` (it"
                " installs anvil), or set TRACEFIN_CHAIN_RPC_URL to a running chain"
            ) from None
        raise UpError(f"{exc}; or set TRACEFIN_CHAIN_RPC_URL to a running chain") from None
    teardown.add("anvil", node.stop)
    say("chain      ready")
    return node.url


def _preferred_port(port: int) -> int:
    return port if not port_open("127.0.0.1", port, timeout=0.2) else free_port()


def _wait_until_ready(url: str, worker: Worker, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process is not None and worker.process.poll() is not None:
            return False
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - our own URL
        ):
            if response.status == 200:
                return True
        time.sleep(0.2)
    return False


class StopRequested:
    """Set by SIGINT/SIGTERM; `up` then stops everything in reverse order."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.event.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)


def up(settings: Settings, *, demo: bool, say: Say) -> None:
    """Bring everything up, supervise until told to stop, then stop everything in order."""
    home = Path(settings.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    if port_open(settings.api_host, settings.api_port, timeout=0.2):
        raise UpError(
            f"port {settings.api_port} on {settings.api_host} is taken: stop what uses it or set"
            " TRACEFIN_API_PORT to a free port"
        )
    stop = StopRequested()
    stop.install()
    teardown = Teardown()
    supervisor: Supervisor | None = None
    try:
        endpoints = Endpoints(
            database_url=find_database(settings, home, teardown, say),
            mqtt_url=find_broker(settings, home, teardown, say),
            chain_rpc_url=find_chain(settings, home, teardown, say),
        )
        if stop.event.is_set():  # Ctrl-C while starting: stop what was started
            return
        applied = migrate(endpoints.database_url)
        set_policies(endpoints.database_url, settings)
        say(f"database   {len(applied)} migrations applied" if applied else "database   up to date")
        _deploy(settings, endpoints, say)
        env = {**os.environ, **endpoints.env(), "PYTHONUNBUFFERED": "1"}
        supervisor = Supervisor(env, logs, say)
        supervisor.start(Worker("ingest", ["ingest", "--client-id", "tracefin-up-ingest"]))
        supervisor.start(Worker("anchor", ["anchor"]))
        supervisor.start(Worker("finance", ["finance"]))
        supervisor.start(Worker("capture", ["capture-worker"]))
        supervisor.start(Worker("webhooks", ["subscription-worker"]))
        api = supervisor.start(Worker("api", ["api"]))
        base = f"http://{settings.api_host}:{settings.api_port}"
        if not _wait_until_ready(f"{base}/healthz", api, timeout=60):
            raise UpError(f"the API did not come up on {base}; see {logs / 'api.log'}")
        say(f"api        ready on {base}")
        if demo and not stop.event.is_set():
            start_demo(settings, endpoints, base, supervisor, stop.event, say)
        say("everything is up; Ctrl-C stops it")
        while not stop.event.wait(0.5):
            supervisor.check()
        say("stopping ...")
    finally:
        if supervisor is not None:
            supervisor.stop_all()
        teardown.run(say)


def _deploy(settings: Settings, endpoints: Endpoints, say: Say) -> None:
    try:
        with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
            deployed = deploy_and_restore(
                conn,
                Journal(settings.journal_seal_key()),
                connect(endpoints.chain_rpc_url),
                settings.chain_key(),
            )
    except ChainError as exc:
        raise UpError(f"could not deploy the contracts: {exc}") from None
    outcome, pledges = deployed.outcome, deployed.pledges
    anchor = outcome.deployment.anchor_address
    if outcome.replaced is not None and outcome.upgraded:
        say(
            f"contracts  upgraded (TraceAnchor {outcome.replaced.anchor_address} was an older"
            f" build): deployed anew at {anchor}; every stored event will be anchored again"
        )
    elif outcome.replaced is not None:
        say(
            f"contracts  the devnet was reset (TraceAnchor {outcome.replaced.anchor_address} is"
            f" gone): deployed anew at {anchor}; every stored event will be anchored again"
        )
    elif outcome.created:
        say(f"contracts  deployed: TraceAnchor {anchor}")
    else:
        say(f"contracts  reusing TraceAnchor {anchor}")
    if pledges.restored:
        say(f"pledges    {len(pledges.restored)} live pledges put on the new PledgeRegistry")
    if pledges.conflicting:
        say(
            f"pledges    {len(pledges.conflicting)} lots are pledged to someone else on the"
            " new PledgeRegistry (flagged double_pledge)"
        )
