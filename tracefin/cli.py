"""The `tracefin` command line: one entry point, one subcommand per process or admin task."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence

import psycopg
from pydantic import ValidationError

from ledger import registry_store
from ledger.db import migrate
from ledger.signatures import normalise_address
from tracefin.settings import Settings, get_settings

_SLUG_HELP = "lower-case letters, digits and '-' (used in MQTT topics)"


class CliError(Exception):
    """A user-facing failure: printed as one sentence, exit status 2, no traceback."""


def _database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise CliError("set TRACEFIN_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1/tracefin)")
    return settings.database_url


def _mqtt_url(settings: Settings) -> str:
    if settings.mqtt_url is None:
        raise CliError("set TRACEFIN_MQTT_URL (e.g. mqtt://127.0.0.1:1883)")
    return settings.mqtt_url


def _connect(settings: Settings) -> psycopg.Connection[object]:
    try:
        return psycopg.connect(_database_url(settings))
    except psycopg.OperationalError as exc:
        raise CliError(f"cannot reach the database: {str(exc).strip()}") from None


def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> None:
    try:
        applied = migrate(_database_url(settings))
    except psycopg.OperationalError as exc:
        raise CliError(f"cannot reach the database: {str(exc).strip()}") from None
    print(json.dumps({"applied": applied}))


def cmd_org_add(args: argparse.Namespace, settings: Settings) -> None:
    with _connect(settings) as conn:
        try:
            org, api_key = registry_store.add_org(conn, args.slug, args.role)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"org": org.slug, "role": org.role, "api_key": api_key}))


def cmd_device_add(args: argparse.Namespace, settings: Settings) -> None:
    if args.unsigned == (args.address is not None):
        raise CliError("give exactly one of --address 0x… or --unsigned")
    try:
        address = normalise_address(args.address) if args.address else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with _connect(settings) as conn:
        try:
            device = registry_store.add_device(conn, args.org, args.device, address)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(
        json.dumps(
            {
                "org": device.org_slug,
                "device": device.device_id,
                "address": device.address,
                "unsigned": device.address is None,
                "publish_to": f"tf/{device.org_slug}/{device.device_id}/events",
            }
        )
    )


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> None:
    from ingest.service import run_ingest

    _database_url(settings)
    _mqtt_url(settings)
    run_ingest(settings, client_id=args.client_id)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.simulate import register_sim_devices, run_simulation

    mqtt_url = _mqtt_url(settings)
    if not args.no_register:
        with _connect(settings) as conn:
            register_sim_devices(conn, args.org, seed=args.seed)
    sent = run_simulation(
        mqtt_url,
        args.org,
        products=args.products,
        rate=args.rate,
        seed=args.seed,
        first_product=args.first_product,
    )
    print(json.dumps({"org": args.org, "products": args.products, "messages": sent}))


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]{1,64}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: use {_SLUG_HELP}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracefin", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database administration").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("migrate", help="apply pending migrations (idempotent)").set_defaults(
        handler=cmd_db_migrate
    )

    org = commands.add_parser("org", help="organisations").add_subparsers(
        dest="org_command", required=True
    )
    org_add = org.add_parser("add", help="create an organisation and print its API key")
    org_add.add_argument("slug", type=_slug, help=_SLUG_HELP)
    org_add.add_argument("--role", required=True, choices=registry_store.ROLES)
    org_add.set_defaults(handler=cmd_org_add)

    device = commands.add_parser("device", help="devices").add_subparsers(
        dest="device_command", required=True
    )
    device_add = device.add_parser("add", help="register a device of an organisation")
    device_add.add_argument("org", type=_slug)
    device_add.add_argument("device", type=_slug)
    device_add.add_argument("--address", help="0x address of the key the device signs with")
    device_add.add_argument(
        "--unsigned",
        action="store_true",
        help="the device does not sign; broker authentication is its only proof",
    )
    device_add.set_defaults(handler=cmd_device_add)

    ingest = commands.add_parser("ingest", help="run an MQTT ingest worker")
    ingest.add_argument("--client-id", help="stable MQTT client id (one per worker)")
    ingest.set_defaults(handler=cmd_ingest)

    simulate = commands.add_parser("simulate", help="publish a simulated factory's events")
    simulate.add_argument("--org", type=_slug, default="demo-factory")
    simulate.add_argument("--products", type=int, default=10)
    simulate.add_argument("--first-product", type=int, default=0)
    simulate.add_argument(
        "--rate", type=float, default=200.0, help="messages per second (0: flat out)"
    )
    simulate.add_argument("--seed", default="tracefin-demo", help="derives the device keys")
    simulate.add_argument(
        "--no-register", action="store_true", help="do not register the org and devices first"
    )
    simulate.set_defaults(handler=cmd_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace, Settings], None] = args.handler
    try:
        try:
            settings = get_settings()
        except ValidationError as exc:
            raise CliError(f"invalid settings: {exc.errors()[0]['msg']}") from None
        handler(args, settings)
    except CliError as exc:
        print(f"tracefin: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
