"""The `tracefin` command line: one entry point, one subcommand per process or admin task."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from pydantic import ValidationError

from epcis.identifiers import gln13, gs1_prefix, gtin14
from epcis.json_input import JsonRefused, loads_guarded
from epcis.signatures import normalise_address
from ingest.topics import Kind, device_topic
from ledger.bundle import BundleError, TrustedAnchor, anchors_of_deployment
from records import registry_store
from records.db import Conn
from tracefin.native import native_state, package_dir, stale_build_message
from tracefin.schema import migrate, set_policies
from tracefin.settings import MissingProductionSetting, Settings

if TYPE_CHECKING:
    from finance.store.journal import Journal
    from ledger.chain import Chain
    from records.db import Conn

_SLUG_HELP = "lower-case letters, digits and '-' (used in MQTT topics)"
# A proof bundle is a few kilobytes; a file far larger is not one.
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
# The broker's accounts file: about 1 KiB per device, so room for a hundred thousand devices.
MAX_BROKER_ACCOUNTS_BYTES = 128 * 1024 * 1024


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


def _connect(settings: Settings) -> Conn:
    try:
        return psycopg.connect(_database_url(settings))
    except psycopg.OperationalError as exc:
        raise CliError(f"cannot reach the database: {str(exc).strip()}") from None


def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> None:
    try:
        applied = migrate(_database_url(settings))
        set_policies(_database_url(settings), settings)
    except psycopg.OperationalError as exc:
        raise CliError(f"cannot reach the database: {str(exc).strip()}") from None
    print(json.dumps({"applied": applied}))


def cmd_org_add(args: argparse.Namespace, settings: Settings) -> None:
    prefixes: list[str] = args.gs1_prefix or []
    with _connect(settings) as conn:
        try:
            with conn.transaction():
                org, api_key = registry_store.add_org(
                    conn,
                    args.slug,
                    args.role,
                    prefixes,
                    # Four eyes is a bank's control: on by default for a financier in production.
                    four_eyes=args.role == "financier" and settings.environment == "production",
                )
                if args.name is not None:
                    registry_store.set_org_name(conn, org.slug, args.name)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    output: dict[str, object] = {"org": org.slug, "role": org.role, "api_key": api_key}
    if args.name is not None:
        output["name"] = " ".join(args.name.split())
    if prefixes:
        output["gs1_prefixes"] = sorted(set(prefixes))
    print(json.dumps(output))


def cmd_org_prefix_add(args: argparse.Namespace, settings: Settings) -> None:
    with _connect(settings) as conn:
        try:
            registry_store.add_prefix(conn, args.slug, args.prefix)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
        prefixes = registry_store.org_prefixes(conn, args.slug)
    print(json.dumps({"org": args.slug, "gs1_prefixes": prefixes}))


def cmd_org_authorise(args: argparse.Namespace, settings: Settings) -> None:
    with _connect(settings) as conn:
        try:
            granted = registry_store.authorise(conn, args.owner, args.agent, args.gtin or [])
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"authorisations": [asdict(row) for row in granted]}))


def cmd_site_add(args: argparse.Namespace, settings: Settings) -> None:
    from finance import service

    journal = _cli_journal(settings, args)
    _finance(
        settings,
        lambda c: service.add_site(
            c,
            journal,
            args.org,
            args.gln,
            args.name,
            supervised=args.supervised,
            grant=args.grant,
            city=args.city,
        ),
    )


def cmd_site_list(args: argparse.Namespace, settings: Settings) -> None:
    with _connect(settings) as conn:
        sites = registry_store.list_sites(conn, args.org)
    print(json.dumps({"sites": [asdict(site) for site in sites]}))


def cmd_rules_show(args: argparse.Namespace, settings: Settings) -> None:
    from epcis.authority import rules_table

    with _connect(settings) as conn:
        extensions = registry_store.rule_extensions(conn)
    print(json.dumps({"rules": rules_table(extensions.items())}))


def cmd_rules_add(args: argparse.Namespace, settings: Settings) -> None:
    from epcis.authority import Fact
    from epcis.rejects import EventRejected
    from epcis.vocabulary import CBVKind, canonical_cbv

    try:
        step = canonical_cbv(CBVKind.BIZ_STEP, args.biz_step)
    except EventRejected as exc:
        raise CliError(exc.detail) from None
    with _connect(settings) as conn:
        try:
            registry_store.add_rule_extension(conn, step, Fact(args.fact))
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"biz_step": step, "fact": args.fact}))


def cmd_org_set(args: argparse.Namespace, settings: Settings) -> None:
    from records import people_store

    with _connect(settings) as conn:
        try:
            people_store.set_four_eyes(conn, args.slug, args.four_eyes == "on")
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"org": args.slug, "four_eyes": args.four_eyes == "on"}))


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> None:
    from records import people_store

    with _connect(settings) as conn:
        try:
            user, api_key = people_store.add_user(conn, args.org, args.name, args.role)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"org": user.org, "user": user.name, "roles": user.roles, "api_key": api_key}))


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> None:
    from records import people_store

    with _connect(settings) as conn:
        try:
            found = people_store.users(conn, args.org)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    print(json.dumps({"users": [{"user": u.name, "roles": u.roles} for u in found]}))


def cmd_org_revoke_key(args: argparse.Namespace, settings: Settings) -> None:
    with _connect(settings) as conn:
        org = registry_store.get_org(conn, args.slug)
        if org is None:
            raise CliError(f"unknown organisation {args.slug!r}")
        revoked = registry_store.revoke_keys(conn, args.slug)
        api_key = registry_store.issue_api_key(conn, org.id) if args.reissue else None
    print(json.dumps({"org": args.slug, "revoked": revoked, "api_key": api_key}))


def cmd_api(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.processes.api import run_api

    _database_url(settings)
    run_api(settings)


def cmd_up(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.supervisor import UpError, say_to
    from tracefin.up import up

    try:
        up(settings, demo=args.demo, say=say_to(sys.stdout))
    except UpError as exc:
        raise CliError(str(exc)) from None


def cmd_device_add(args: argparse.Namespace, settings: Settings) -> None:
    """Register a device, bind it to sites, or rotate its key (`--address` with a new key)."""
    if args.unsigned == (args.address is not None):
        raise CliError("give exactly one of --address 0x… or --unsigned")
    try:
        address = normalise_address(args.address) if args.address else None
        sites = [gln13(site) for site in args.site]
    except ValueError as exc:
        raise CliError(f"invalid_identifier: {exc}") from None
    with _connect(settings) as conn:
        try:
            device = registry_store.add_device(conn, args.org, args.device, address, sites)
        except registry_store.AddressInUse as exc:
            raise CliError(f"address_in_use: {exc}") from None
        except registry_store.NotSiteOperator as exc:
            raise CliError(f"not_site_operator: {exc}") from None
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    output: dict[str, object] = {
        "org": device.org_slug,
        "device": device.device_id,
        "address": device.address,
        "unsigned": device.address is None,
        "sites": sites,
        "publish_to": device_topic(device.org_slug, device.device_id, Kind.EVENTS),
    }
    print(json.dumps(output))


def _read_broker_accounts(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CliError(f"{path} does not exist: create it with `tracefin broker accounts`")
    config = _read_json_file(str(path), str(path), max_bytes=MAX_BROKER_ACCOUNTS_BYTES)
    if not isinstance(config, dict) or not all(
        isinstance(config.get(key), list) for key in ("clients", "roles")
    ):
        raise CliError(f"{path} is not a dynamic-security file (no clients and roles)")
    return config


def _write_broker_accounts(path: Path, config: dict[str, Any]) -> None:
    # Password hashes and the share group: readable by its owner only (docs/deployment.md makes
    # the broker's user that owner). Replaced whole, so the broker never reads half a file.
    staging = path.with_name(f".{path.name}.new")
    staging.unlink(missing_ok=True)
    with os.fdopen(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        json.dump(config, out, indent=2)
        out.write("\n")
    if path.exists():
        # The replacement keeps the owner: a file the broker cannot read loads no account.
        owner = path.stat()
        try:
            os.chown(staging, owner.st_uid, owner.st_gid)
        except PermissionError:
            staging.unlink()
            raise CliError(
                f"{path} belongs to uid {owner.st_uid}, which the broker reads it as: run this"
                " as that user or with sudo"
            ) from None
    staging.replace(path)


def cmd_broker_accounts(args: argparse.Namespace, settings: Settings) -> None:
    """Write the broker's service accounts into its dynamic-security file, keeping its devices."""
    from tracefin import broker_auth

    def secret(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise CliError(f"set {name} (in .env: `set -a; . ./.env; set +a`)")
        return value

    passwords = {
        broker_auth.ingest_username(n): secret(f"MQTT_INGEST_{n}_PASSWORD")
        for n in range(1, args.ingest_workers + 1)
    }
    passwords[broker_auth.FINANCE_USERNAME] = secret("MQTT_FINANCE_PASSWORD")
    passwords[broker_auth.HEALTH_USERNAME] = secret("MQTT_HEALTH_PASSWORD")
    path: Path = args.file
    existing = _read_broker_accounts(path) if path.exists() else None
    try:
        config = broker_auth.dynsec_config(
            secret("INGEST_SHARE_GROUP_SECRET"), passwords, keep_devices_of=existing
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _write_broker_accounts(path, config)
    print(json.dumps({"file": str(path), "accounts": sorted(passwords)}))


def cmd_broker_device(args: argparse.Namespace, settings: Settings) -> None:
    """Add a device's broker account (or give it a new password); print the password once."""
    from tracefin import broker_auth

    path: Path = args.file
    password = broker_auth.generate_password()
    config = broker_auth.with_device(_read_broker_accounts(path), args.org, args.device, password)
    _write_broker_accounts(path, config)
    username = broker_auth.device_username(args.org, args.device)
    print(json.dumps({"mqtt_username": username, "mqtt_password": password, "file": str(path)}))


def cmd_broker_remove_device(args: argparse.Namespace, settings: Settings) -> None:
    """Remove a device's broker account and role (after `device revoke`, say)."""
    from tracefin import broker_auth

    path: Path = args.file
    try:
        config = broker_auth.without_device(_read_broker_accounts(path), args.org, args.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _write_broker_accounts(path, config)
    username = broker_auth.device_username(args.org, args.device)
    print(json.dumps({"removed": username, "file": str(path)}))


def cmd_device_revoke(args: argparse.Namespace, settings: Settings) -> None:
    """Revoke a device: whatever it sends from now on is refused `device_revoked`."""
    with _connect(settings) as conn:
        try:
            revoked_at = registry_store.revoke_device(conn, args.org, args.device)
        except registry_store.RegistryError as exc:
            raise CliError(str(exc)) from None
    revoked = {"org": args.org, "device": args.device, "revoked_at": revoked_at.isoformat()}
    print(json.dumps(revoked))


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.processes.ingest import run_ingest_processes

    _database_url(settings)
    _mqtt_url(settings)
    run_ingest_processes(settings, processes=args.processes, client_id=args.client_id)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.simulate import register_sim_devices, register_sim_sites, run_simulation

    mqtt_url = _mqtt_url(settings)
    if not args.no_register:
        with _connect(settings) as conn:
            register_sim_devices(conn, args.org, seed=args.seed)
            register_sim_sites(conn, args.org)  # where free: its devices' events then count
    sent = run_simulation(
        mqtt_url,
        args.org,
        products=args.products,
        rate=args.rate,
        seed=args.seed,
        first_product=args.first_product,
    )
    print(json.dumps({"org": args.org, "products": args.products, "messages": sent}))


def _chain_url(settings: Settings, override: str | None = None) -> str:
    url = override or settings.chain_rpc_url
    if url is None:
        raise CliError("set TRACEFIN_CHAIN_RPC_URL (e.g. http://127.0.0.1:8545) or give --rpc")
    return url


def _digest(event_hash: str) -> bytes:
    from epcis.event_hash import digest_from_hash_id

    try:
        return digest_from_hash_id(event_hash)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def cmd_chain_deploy(args: argparse.Namespace, settings: Settings) -> None:
    from finance.pledges import deploy_and_restore
    from ledger.chain import ChainError, connect

    w3 = connect(_chain_url(settings))
    with _connect(settings) as conn:
        try:
            deployed = deploy_and_restore(conn, _journal(settings), w3, settings.chain_key())
        except ChainError as exc:
            raise CliError(str(exc)) from None
    outcome, pledges = deployed.outcome, deployed.pledges
    deployment = outcome.deployment
    print(
        json.dumps(
            {
                "chain_id": deployment.chain_id,
                "trace_anchor": deployment.anchor_address,
                "pledge_registry": deployment.pledge_address,
                "deployed_block": deployment.deployed_block,
                "created": outcome.created,
                "replaced_reset_deployment": outcome.replaced.anchor_address
                if outcome.replaced and not outcome.upgraded
                else None,
                "replaced_outdated_deployment": outcome.replaced.anchor_address
                if outcome.replaced and outcome.upgraded
                else None,
                "pledges_restored": len(pledges.restored),
                "pledges_held_by_others": pledges.conflicting,
            }
        )
    )


def cmd_chain_clear_pledge(args: argparse.Namespace, settings: Settings) -> None:
    from finance.pledges import clear_pledge_key

    journal = _journal(settings)
    _finance(
        settings,
        lambda c: clear_pledge_key(c, journal, _chain(settings, c), args.lot, args.reason),
    )


def cmd_anchor(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.processes.anchor import run_anchor

    _database_url(settings)
    _chain_url(settings)
    run_anchor(settings)


def cmd_proof(args: argparse.Namespace, settings: Settings) -> None:
    from ledger.proofs import build_bundle

    digest = _digest(args.event_hash)
    with _connect(settings) as conn:
        bundle = build_bundle(conn, digest)
    if bundle is None:
        raise CliError(f"no stored event has the hash {args.event_hash}")
    print(json.dumps(bundle.to_json(), indent=2))


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    from ledger import log_store
    from ledger.chain import connect
    from ledger.proofs import build_bundle
    from ledger.verify import verify_bundle

    if (args.bundle is None) == (args.event_hash is None):
        raise CliError("give an EVENT_HASH or --bundle FILE")
    pinned = _pinned_anchors(args, settings)
    if args.bundle is not None:
        bundle: object = _read_json_file(args.bundle, "the bundle")
        if pinned:
            trusted = pinned
        elif settings.database_url is not None:
            with _connect(settings) as conn:
                trusted = log_store.trusted_anchors(conn, pinned)
        else:
            raise CliError(
                "a bundle names its own contract, and anyone can deploy one: say which"
                " TraceAnchor to trust with --chain-id and --contract, --deployment FILE"
                " (GET /v1/deployment) or TRACEFIN_CHAIN_TRUSTED_ANCHORS"
            )
    else:
        with _connect(settings) as conn:
            bundle = build_bundle(conn, _digest(args.event_hash))
            trusted = log_store.trusted_anchors(conn, pinned)
        if bundle is None:
            raise CliError(f"no stored event has the hash {args.event_hash}")
    verdict = verify_bundle(bundle, connect(_chain_url(settings, args.rpc)), trusted)
    print(json.dumps(verdict.as_json()))
    if not verdict.valid:
        raise SystemExit(1)


def _read_json_file(path: str, what: str, max_bytes: int = MAX_BUNDLE_BYTES) -> object:
    """A JSON file through the guarded reader (depth and size limits)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
        return loads_guarded(data, max_bytes=max_bytes)
    except (OSError, JsonRefused) as exc:
        raise CliError(f"cannot read {what}: {exc}") from None


def _pinned_anchors(args: argparse.Namespace, settings: Settings) -> frozenset[TrustedAnchor]:
    """The TraceAnchors `verify` was told to trust: --chain-id with --contract, a --deployment
    document, or TRACEFIN_CHAIN_TRUSTED_ANCHORS; empty when none was given."""
    if (args.chain_id is None) != (args.contract is None):
        raise CliError("--chain-id and --contract go together")
    try:
        if args.contract is not None:
            return frozenset({TrustedAnchor.of(args.chain_id, args.contract)})
        if args.deployment is not None:
            return anchors_of_deployment(_read_json_file(args.deployment, "the deployment"))
    except BundleError as exc:
        raise CliError(str(exc)) from None
    return settings.trusted_anchors()


def cmd_audit(args: argparse.Namespace, settings: Settings) -> None:
    from finance.audit import full_audit
    from ledger.chain import connect

    w3 = connect(settings.chain_rpc_url) if settings.chain_rpc_url else None
    with _connect(settings) as conn:
        report = full_audit(conn, w3, _journal(settings))
    print(json.dumps(report.as_json(), indent=2))
    if not report.clean:
        raise SystemExit(1)


def _finance(settings: Settings, work: Callable[[Conn], object], *, chain: bool = False) -> None:
    """Run a finance operation and print its result as JSON; refusals are one sentence."""
    from finance.errors import FinanceError
    from finance.four_eyes import Refused

    with _connect(settings) as conn:
        conn.autocommit = True
        try:
            result = work(conn)
        except (FinanceError, Refused) as exc:
            raise CliError(f"{exc.code}: {exc.detail}") from None
        except ValueError as exc:
            raise CliError(f"invalid_input: {exc}") from None
    print(json.dumps(_jsonable(result), default=_json_default))


def _jsonable(value: object) -> object:
    """A result as JSON data: a dataclass as its fields, a list of them item by item."""
    from dataclasses import is_dataclass

    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def _json_default(value: object) -> str:
    """Dates and times in ISO form, anything else (Decimal) as its text."""
    from datetime import date

    return value.isoformat() if isinstance(value, date) else str(value)


def _journal(settings: Settings) -> Journal:
    """The finance journal, sealed with the key of these settings."""
    from finance.store.journal import Journal

    return Journal(settings.journal_seal_key())


# The argument naming the org a finance command acts as, first match wins (a financier opening
# a line to a borrower acts as the financier) ...
_ACTING_ORG = ("financier", "owner", "operator", "borrower", "buyer", "guarantor", "org")
# ... but for these, where the borrower names a financier or a guarantor and acts itself.
_BORROWER_ACTS = frozenset({"apply", "guarantor-invite"})


def _cli_journal(settings: Settings, args: argparse.Namespace) -> Journal:
    """The journal of a finance command: the acting org's entries name the person `org/cli`
    (the operator at the CLI; no user may take the name, records/people_store.py)."""
    from records.people_store import CLI_USER

    journal = _journal(settings)
    order = ("borrower",) if getattr(args, "op", None) in _BORROWER_ACTS else _ACTING_ORG
    for name in order:
        org = getattr(args, name, None)
        if isinstance(org, str):
            return journal.acting(org, CLI_USER)
    return journal


def _chain(settings: Settings, conn: Conn) -> Chain:
    from ledger.chain import connect
    from ledger.deployment import current_chain

    chain = current_chain(conn, connect(_chain_url(settings)), settings.chain_key())
    if chain is None:
        raise CliError("no contracts deployed: run `tracefin chain deploy` first")
    return chain


def cmd_finance(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.processes.finance import run_finance

    _database_url(settings)
    run_finance(settings)


def cmd_capture_worker(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.processes.capture_worker import run_capture_worker

    _database_url(settings)
    run_capture_worker(settings)


def cmd_subscription_worker(args: argparse.Namespace, settings: Settings) -> None:
    from tracefin.processes.subscription_worker import run_subscription_worker

    _database_url(settings)
    run_subscription_worker(settings)


def cmd_finance_op(args: argparse.Namespace, settings: Settings) -> None:
    from finance import four_eyes, service

    op = args.op
    journal = _cli_journal(settings, args)
    if op == "product":
        _finance(
            settings,
            lambda c: service.add_product(
                c,
                journal,
                args.owner,
                args.gtin,
                args.name,
                args.category,
                args.price,
                args.currency,
                args.min_temp,
                args.max_temp,
                args.shelf_life_days,
            ),
        )
    elif op == "warehouse":
        _finance(
            settings,
            lambda c: {
                "location": service.add_warehouse(
                    c, journal, args.operator, args.location, args.name
                )
            },
        )
    elif op == "supervise":
        _finance(settings, lambda c: service.supervise(c, journal, args.financier, args.location))
    elif op == "sensor":
        _finance(settings, lambda c: service.add_sensor(c, args.org, args.device, args.location))
    elif op == "policy":
        _finance(
            settings,
            lambda c: service.set_policy(
                c,
                journal,
                args.financier,
                args.category,
                advance_rate=args.advance_rate,
                haircut=args.haircut,
                ltv_cap=args.ltv_cap,
                breach_tolerance_s=args.breach_tolerance_s,
                inspection_freshness_s=args.inspection_freshness_s,
                cure_period_s=args.cure_period_s,
                offer_validity_s=args.offer_validity_s,
                receivable_advance_rate=args.receivable_advance_rate,
                annual_rate=args.rate,
                day_count=args.day_count,
                schedule_kind=args.schedule,
                instalment_count=args.instalments,
                fee_rate=args.fee_rate,
                tenor_days=args.tenor_days,
                grace_days=args.grace_days,
                penalty_rate=args.penalty_rate,
                default_after_days=args.default_after_days,
            ),
        )
    elif op == "line-open":
        _finance(
            settings,
            lambda c: four_eyes.unattended(
                c,
                journal,
                args.financier,
                service.open_line,
                borrower=args.borrower,
                limit=args.limit,
                currency=args.currency,
            ),
        )
    elif op in ("line-freeze", "line-unfreeze"):
        status = "frozen" if op == "line-freeze" else "active"
        _finance(
            settings,
            lambda c: four_eyes.unattended(
                c,
                journal,
                args.financier,
                service.set_line_status,
                line_id=args.line,
                status=status,
            ),
        )
    elif op == "pledge":
        _finance(
            settings,
            lambda c: service.pledge(c, journal, _chain(settings, c), args.financier, args.lot),
        )
    elif op == "release":
        _finance(
            settings,
            lambda c: four_eyes.unattended(
                c,
                journal,
                args.financier,
                service.release,
                chain=_chain(settings, c),
                lot=args.lot,
                quantity=args.quantity,
            ),
        )
    elif op == "status":
        _finance(settings, lambda c: service.lot_status(c, args.lot, args.financier))
    elif op == "apply":
        _finance(
            settings,
            lambda c: service.apply(
                c, journal, args.borrower, args.financier, args.lot, args.amount
            ),
        )
    elif op == "repay":
        _finance(
            settings,
            lambda c: service.repay(c, journal, args.financier, args.line, args.amount, args.loan),
        )
    elif op == "price-set":
        _finance(
            settings,
            lambda c: service.set_price(
                c,
                journal,
                args.financier,
                args.gtin,
                args.price,
                args.currency,
                args.valid_from,
            ),
        )
    elif op == "price-list":
        _finance(settings, lambda c: service.prices(c, args.financier))
    elif op == "review-list":
        _finance(settings, lambda c: service.reviews(c, args.financier))
    elif op == "review":
        _finance(
            settings,
            lambda c: four_eyes.unattended(
                c,
                journal,
                args.financier,
                service.review,
                application_id=args.application,
                approve=args.decision == "approve",
                reason=args.reason,
                rate=args.rate,
            ),
        )
    elif op == "guarantor-invite":
        _finance(
            settings,
            lambda c: service.invite_guarantor(
                c, journal, args.borrower, args.application, args.guarantor
            ),
        )
    elif op == "guarantee":
        _finance(
            settings,
            lambda c: service.guarantee(c, journal, args.guarantor, args.application, args.amount),
        )
    elif op == "offer-accept":
        _finance(settings, lambda c: service.accept_offer(c, journal, args.borrower, args.offer))
    elif op == "offer-list":
        _finance(settings, lambda c: service.offers(c, args.org))
    elif op == "loan-list":
        _finance(settings, lambda c: service.loans(c, args.org))
    elif op == "loan-show":
        _finance(settings, lambda c: service.loan(c, args.org, args.loan))
    elif op == "receivable-list":
        _finance(settings, lambda c: service.receivables(c, args.org))
    elif op == "receivable-confirm":
        _finance(
            settings, lambda c: service.confirm_receivable(c, journal, args.buyer, args.receivable)
        )
    elif op == "receivable-finance":
        _finance(
            settings,
            lambda c: service.finance_receivable(c, journal, args.financier, args.receivable),
        )
    elif op == "receivable-paid":
        _finance(
            settings,
            lambda c: service.receivable_paid(
                c, journal, args.financier, args.receivable, args.amount
            ),
        )
    elif op == "line-close":
        _finance(
            settings,
            lambda c: four_eyes.unattended(
                c, journal, args.financier, service.close_line, line_id=args.line
            ),
        )
    elif op == "run-off":
        _finance(
            settings,
            lambda c: service.run_off(c, journal, "operator", args.financier, args.reason),
        )
    elif op == "report":
        _report(settings, args)
    elif op == "loan-statement":
        _finance(settings, lambda c: service.loan_statement(c, None, args.loan, args.as_of))
    elif op == "loan-repay":
        _finance(
            settings,
            lambda c: service.repay_loan(c, journal, args.financier, args.loan, args.amount),
        )


def _report(settings: Settings, args: argparse.Namespace) -> None:
    """A portfolio report as the operator sees it (every financier's, or one's): JSON rows, or
    CSV with `--csv` (the same rows and columns as the API's)."""
    import csv
    from dataclasses import fields

    from finance import portfolio
    from finance.errors import FinanceError

    with _connect(settings) as conn:
        conn.autocommit = True
        try:
            if args.report == "exposure":
                rows: list[Any] = portfolio.exposure(
                    conn, None, args.by, args.financier, args.as_of
                )
            elif args.report == "concentration":
                rows = portfolio.concentration(conn, None, args.top, args.financier, args.as_of)
            elif args.report == "aging":
                rows = portfolio.aging(conn, None, args.financier, args.as_of)
            else:
                rows = portfolio.run_off(conn, None, args.financier, args.as_of)
        except FinanceError as exc:
            raise CliError(f"{exc.code}: {exc.detail}") from None
    if not args.csv:
        print(json.dumps(_jsonable(rows), default=_json_default))
        return
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    if rows:
        columns = [f.name for f in fields(rows[0])]
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                ["" if v is None else _json_default(v) for v in (getattr(row, c) for c in columns)]
            )


def _rfc3339(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r}: give a time zone (Z or +08:00)")
    return parsed


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: not a YYYY-MM-DD date") from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: must be at least 1")
    return number


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]{1,64}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: use {_SLUG_HELP}")
    return value


def _prefix(value: str) -> str:
    try:
        return gs1_prefix(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gtin(value: str) -> str:
    try:
        return gtin14(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid_identifier: {exc}") from None


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
    org_add.add_argument(
        "--gs1-prefix",
        action="append",
        type=_prefix,
        help="a GS1 Company Prefix the org holds (4-12 digits; repeat for more): its GTINs,"
        " GLNs and SSCCs are the org's. Financiers, regulators and guarantors need none",
    )
    org_add.add_argument(
        "--name", help="its name as people read it (the consumer page shows it as producer)"
    )
    org_add.set_defaults(handler=cmd_org_add)
    prefix = org.add_parser("prefix", help="GS1 Company Prefixes").add_subparsers(
        dest="prefix_command", required=True
    )
    prefix_add = prefix.add_parser("add", help="give an organisation a GS1 Company Prefix")
    prefix_add.add_argument("slug", type=_slug)
    prefix_add.add_argument("prefix", type=_prefix, help="4-12 digits")
    prefix_add.set_defaults(handler=cmd_org_prefix_add)
    authorise = org.add_parser(
        "authorise",
        help="an owner of goods authorises a manufacturer to make them, or an inspector to"
        " inspect them (the kind follows the agent's role)",
    )
    authorise.add_argument("owner", type=_slug)
    authorise.add_argument("agent", type=_slug)
    authorise.add_argument(
        "--gtin",
        action="append",
        type=_gtin,
        help="a GTIN of the owner's (repeat for more; none: all the owner's GTINs)",
    )
    authorise.set_defaults(handler=cmd_org_authorise)
    org_set = org.add_parser("set", help="change an organisation's settings")
    org_set.add_argument("slug", type=_slug)
    org_set.add_argument(
        "--four-eyes",
        required=True,
        choices=("on", "off"),
        help="financiers: approving or declining a referred application, re-limiting a line,"
        " unfreezing and releasing collateral wait for a second person (a checker)",
    )
    org_set.set_defaults(handler=cmd_org_set)
    user = commands.add_parser("user", help="the people of an organisation").add_subparsers(
        dest="user_command", required=True
    )
    user_add = user.add_parser("add", help="add a user and print its API key (once)")
    user_add.add_argument("org", type=_slug)
    user_add.add_argument("name", help="lower-case letters, digits and '-'; unique in the org")
    user_add.add_argument(
        "--role",
        action="append",
        required=True,
        choices=registry_store.USER_ROLES,
        help="maker: writes and makes four-eyes requests; checker: approves another user's;"
        " viewer: reads only (repeat for more)",
    )
    user_add.set_defaults(handler=cmd_user_add)
    user_list = user.add_parser("list", help="an organisation's users and their roles")
    user_list.add_argument("org", type=_slug)
    user_list.set_defaults(handler=cmd_user_list)
    revoke = org.add_parser("revoke-key", help="revoke every API key of an organisation")
    revoke.add_argument("slug", type=_slug)
    revoke.add_argument("--reissue", action="store_true", help="print one new key")
    revoke.set_defaults(handler=cmd_org_revoke_key)

    site = commands.add_parser("site", help="sites (GLNs) organisations operate").add_subparsers(
        dest="site_command", required=True
    )
    site_add = site.add_parser(
        "add", help="register a site an org operates: by its own GS1 prefix, or by --grant"
    )
    site_add.add_argument("org", type=_slug)
    site_add.add_argument(
        "gln", help="13 digits, Digital Link https://id.gs1.org/414/… or urn:epc:id:sgln:…"
    )
    site_add.add_argument("--name", required=True)
    site_add.add_argument("--city", help="shown beside the name on product pages")
    site_add.add_argument(
        "--supervised",
        action="store_true",
        help="a warehouse financiers may supervise (`warehouse supervise`)",
    )
    site_add.add_argument(
        "--grant",
        action="store_true",
        help="the operator's grant: the GLN is outside the org's GS1 Company Prefixes",
    )
    site_add.set_defaults(handler=cmd_site_add)
    site_list = site.add_parser("list", help="the registered sites")
    site_list.add_argument("org", nargs="?", type=_slug, help="only this org's")
    site_list.set_defaults(handler=cmd_site_list)

    rules = commands.add_parser(
        "rules", help="the evidence-authority rules: whose attestation makes a fact count"
    ).add_subparsers(dest="rules_command", required=True)
    rules.add_parser("show", help="print the rules, the operator's extensions too").set_defaults(
        handler=cmd_rules_show
    )
    rules_add = rules.add_parser("add", help="say which fact a custom bizStep states")
    rules_add.add_argument("--biz-step", required=True, help="the bizStep URI")
    rules_add.add_argument(
        "--fact",
        required=True,
        choices=("making", "inspection", "site_custody", "transit", "acceptance", "retail_sale"),
    )
    rules_add.set_defaults(handler=cmd_rules_add)

    device = commands.add_parser("device", help="devices").add_subparsers(
        dest="device_command", required=True
    )
    device_add = device.add_parser(
        "add",
        help="register a device of an organisation (again with a new --address: rotate its key)",
    )
    device_add.add_argument("org", type=_slug)
    device_add.add_argument("device", type=_slug)
    device_add.add_argument(
        "--address",
        help="0x address of the key the device signs with (a new one rotates the key: the old"
        " one is revoked); unique across organisations",
    )
    device_add.add_argument(
        "--site",
        action="append",
        default=[],
        help="a site (GLN: 13 digits, Digital Link or sgln URN) the org operates and the device"
        " records at; repeat for more",
    )
    device_add.add_argument(
        "--unsigned",
        action="store_true",
        help="the device does not sign; broker authentication is its only proof",
    )
    device_add.set_defaults(handler=cmd_device_add)
    device_revoke = device.add_parser(
        "revoke", help="revoke a device: what it sends from now on is refused device_revoked"
    )
    device_revoke.add_argument("org", type=_slug)
    device_revoke.add_argument("device", type=_slug)
    device_revoke.set_defaults(handler=cmd_device_revoke)

    broker = commands.add_parser(
        "broker", help="the broker's accounts (Mosquitto's dynamic-security file)"
    ).add_subparsers(dest="broker_command", required=True)
    accounts = broker.add_parser(
        "accounts",
        help="write the ingest, finance and health accounts and the share group from the"
        " environment (.env) into the file, keeping its devices; restart the broker after",
    )
    accounts.add_argument("file", type=Path, help="deploy/mosquitto/dynamic-security.json")
    accounts.add_argument(
        "--ingest-workers",
        type=int,
        default=2,
        help="how many ingest workers (MQTT_INGEST_{n}_PASSWORD each; default 2)",
    )
    accounts.set_defaults(handler=cmd_broker_accounts)
    for name, text, handler in (
        (
            "device",
            "add a device's account to the file, or give it a new password; prints the"
            " password once; restart the broker after",
            cmd_broker_device,
        ),
        (
            "remove-device",
            "remove a device's account from the file (after `device revoke`); restart the"
            " broker after",
            cmd_broker_remove_device,
        ),
    ):
        device_account = broker.add_parser(name, help=text)
        device_account.add_argument(
            "file", type=Path, help="deploy/mosquitto/dynamic-security.json"
        )
        device_account.add_argument("org", type=_slug)
        device_account.add_argument("device", type=_slug)
        device_account.set_defaults(handler=handler)

    ingest = commands.add_parser("ingest", help="run an MQTT ingest worker")
    ingest.add_argument("--client-id", help="stable MQTT client id (one per worker)")
    ingest.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="worker processes, each a shared-subscription member with its own client id"
        " (--client-id for the first, then ID-2 ... ID-N); more than 1 supervises them",
    )
    ingest.set_defaults(handler=cmd_ingest)

    chain = commands.add_parser("chain", help="the ledger's contracts").add_subparsers(
        dest="chain_command", required=True
    )
    chain.add_parser(
        "deploy", help="deploy TraceAnchor and PledgeRegistry (reuses live recorded ones)"
    ).set_defaults(handler=cmd_chain_deploy)
    clear = chain.add_parser(
        "clear-pledge",
        help="release, as the operator, a lot's on-chain pledge that is not this ledger's"
        " (squatted or stale), then put this ledger's live pledge of it back",
    )
    clear.add_argument("lot", help="the lot's Digital Link URI (its key is keccak of it)")
    clear.add_argument("--reason", required=True, help="why: kept in the journal")
    clear.set_defaults(handler=cmd_chain_clear_pledge)

    commands.add_parser(
        "anchor", help="run an anchor worker (one leader, others stand by)"
    ).set_defaults(handler=cmd_anchor)

    proof = commands.add_parser("proof", help="print an event's proof bundle")
    proof.add_argument("event_hash", help="ni:///sha-256;…?ver=CBV2.0")
    proof.set_defaults(handler=cmd_proof)

    verify = commands.add_parser(
        "verify", help="verify an event (from the database) or a bundle file against the chain"
    )
    verify.add_argument("event_hash", nargs="?", help="ni:///sha-256;…?ver=CBV2.0")
    verify.add_argument("--bundle", help="a proof bundle JSON file (no database needed)")
    verify.add_argument("--rpc", help="chain RPC URL (default TRACEFIN_CHAIN_RPC_URL)")
    verify.add_argument(
        "--chain-id", type=int, help="the chain id of the TraceAnchor to trust (with --contract)"
    )
    verify.add_argument("--contract", help="the TraceAnchor address to trust (with --chain-id)")
    verify.add_argument(
        "--deployment",
        help="trust the TraceAnchors of a deployment document (GET /v1/deployment, saved)",
    )
    verify.set_defaults(handler=cmd_verify)

    commands.add_parser(
        "audit", help="recompute every hash and batch root and compare with the chain"
    ).set_defaults(handler=cmd_audit)

    commands.add_parser("api", help="serve the HTTP API").set_defaults(handler=cmd_api)
    run_all = commands.add_parser(
        "up", help="start every service and worker the settings do not point elsewhere"
    )
    run_all.add_argument(
        "--demo",
        action="store_true",
        help="add a simulated factory and a bank, then say where to look",
    )
    run_all.set_defaults(handler=cmd_up)
    commands.add_parser("finance", help="run the finance monitoring worker").set_defaults(
        handler=cmd_finance
    )
    commands.add_parser(
        "capture-worker", help="work the EPCIS capture jobs of POST /epcis/capture"
    ).set_defaults(handler=cmd_capture_worker)
    commands.add_parser(
        "subscription-worker",
        help="deliver the webhook subscriptions of named queries (POST /epcis/queries/…)",
    ).set_defaults(handler=cmd_subscription_worker)
    _finance_commands(commands)

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


def _finance_commands(commands: Any) -> None:
    def op(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        parser.set_defaults(handler=cmd_finance_op, op=name)
        return parser

    products = commands.add_parser("product", help="products").add_subparsers(
        dest="product_command", required=True
    )
    product = op(products.add_parser("add", help="register (or update) a product"), "product")
    product.add_argument("owner", type=_slug)
    product.add_argument("gtin")
    product.add_argument("--name", required=True)
    product.add_argument("--category", required=True)
    product.add_argument("--price", required=True, help="reference unit price, e.g. 12.50")
    product.add_argument("--currency", required=True)
    product.add_argument("--min-temp", help="lowest allowed storage temperature, °C")
    product.add_argument("--max-temp", help="highest allowed storage temperature, °C")
    product.add_argument("--shelf-life-days", type=int)

    warehouse = commands.add_parser("warehouse", help="warehouses").add_subparsers(
        dest="warehouse_command", required=True
    )
    add = op(
        warehouse.add_parser(
            "add", help="register a warehouse site (alias of `site add --supervised --grant`)"
        ),
        "warehouse",
    )
    add.add_argument("operator", type=_slug)
    add.add_argument("location", help="GLN as 13 digits, urn:epc:id:sgln:… or Digital Link /414/…")
    add.add_argument("--name", required=True)
    supervise = op(
        warehouse.add_parser("supervise", help="a financier accepts a warehouse"), "supervise"
    )
    supervise.add_argument("financier", type=_slug)
    supervise.add_argument("location")

    sensors = commands.add_parser("sensor", help="warehouse sensors").add_subparsers(
        dest="sensor_command", required=True
    )
    sensor = op(sensors.add_parser("add", help="a device that measures a warehouse"), "sensor")
    sensor.add_argument("org", type=_slug)
    sensor.add_argument("device", type=_slug)
    sensor.add_argument("location")

    policies = commands.add_parser("policy", help="financing policies").add_subparsers(
        dest="policy_command", required=True
    )
    policy = op(policies.add_parser("set", help="set a financier's policy"), "policy")
    policy.add_argument("financier", type=_slug)
    policy.add_argument("--category", default="*")
    # Terms not given take the rules' defaults (finance/rules.py, DEFAULT_*).
    policy.add_argument("--advance-rate")
    policy.add_argument("--haircut")
    policy.add_argument("--ltv-cap")
    policy.add_argument("--breach-tolerance-s", type=int)
    policy.add_argument("--inspection-freshness-s", type=int)
    policy.add_argument("--cure-period-s", type=int, help="time to cure a margin call")
    policy.add_argument("--offer-validity-s", type=int, help="how long an offer stands")
    policy.add_argument("--receivable-advance-rate")
    policy.add_argument("--rate", help="annual interest rate of its loans, e.g. 0.0365")
    policy.add_argument("--day-count", choices=["ACT/365F", "ACT/360"])
    policy.add_argument("--schedule", choices=["bullet", "instalments"])
    policy.add_argument("--instalments", type=int, help="how many equal instalments")
    policy.add_argument("--fee-rate", help="arrangement fee, a share of the principal")
    policy.add_argument("--tenor-days", type=int, help="maturity: drawn date + these days")
    policy.add_argument("--grace-days", type=int, help="days after a due date before overdue")
    policy.add_argument("--penalty-rate", help="annual rate on overdue principal")
    policy.add_argument("--default-after-days", type=int, help="overdue days to default")

    line = commands.add_parser("line", help="credit lines").add_subparsers(
        dest="line_command", required=True
    )
    opened = op(line.add_parser("open", help="open (or re-limit) a credit line"), "line-open")
    opened.add_argument("financier", type=_slug)
    opened.add_argument("borrower", type=_slug)
    opened.add_argument("--limit", required=True)
    opened.add_argument("--currency", required=True)
    for name in ("freeze", "unfreeze", "close"):
        status = op(line.add_parser(name, help=f"{name} a line"), f"line-{name}")
        status.add_argument("financier", type=_slug)
        status.add_argument("line", type=int)

    lot = commands.add_parser("lot", help="lots as collateral").add_subparsers(
        dest="lot_command", required=True
    )
    for name, text in (("pledge", "pledge a lot (on chain)"), ("release", "release a pledge")):
        action = op(lot.add_parser(name, help=text), name)
        action.add_argument("financier", type=_slug)
        action.add_argument("lot", help="urn:epc:class:lgtin:… or https://id.gs1.org/01/…/10/…")
        if name == "release":
            action.add_argument(
                "--quantity", type=int, help="release only this many units (a partial release)"
            )
    status_of = op(lot.add_parser("status", help="goods status of a lot"), "status")
    status_of.add_argument("lot")
    status_of.add_argument("--financier", type=_slug)

    apply = op(commands.add_parser("apply", help="apply for financing against a lot"), "apply")
    apply.add_argument("borrower", type=_slug)
    apply.add_argument("financier", type=_slug)
    apply.add_argument("lot")
    apply.add_argument("amount")

    review = commands.add_parser("review", help="a financier's review queue").add_subparsers(
        dest="review_command", required=True
    )
    queue = op(review.add_parser("list", help="referred applications waiting"), "review-list")
    queue.add_argument("financier", type=_slug)
    decided = op(review.add_parser("decide", help="approve or decline, with a reason"), "review")
    decided.add_argument("financier", type=_slug)
    decided.add_argument("application", type=int)
    decided.add_argument("decision", choices=("approve", "decline"))
    decided.add_argument("--reason", required=True)
    decided.add_argument(
        "--rate", help="an approval's annual rate for this loan (else the policy's)"
    )
    invite = op(
        commands.add_parser("invite", help="a borrower invites a guarantor to its application"),
        "guarantor-invite",
    )
    invite.add_argument("borrower", type=_slug)
    invite.add_argument("application", type=int)
    invite.add_argument("guarantor", type=_slug)
    guarantee = op(
        commands.add_parser("guarantee", help="an invited guarantor guarantees an application"),
        "guarantee",
    )
    guarantee.add_argument("guarantor", type=_slug)
    guarantee.add_argument("application", type=int)
    guarantee.add_argument("amount")

    repay = op(commands.add_parser("repay", help="record a repayment on a line"), "repay")
    repay.add_argument("financier", type=_slug)
    repay.add_argument("line", type=int)
    repay.add_argument("amount")
    repay.add_argument("--loan", type=int, help="the loan to repay first (then the oldest)")

    price = commands.add_parser("price", help="a financier's own prices").add_subparsers(
        dest="price_command", required=True
    )
    priced = op(price.add_parser("set", help="your unit price for a GTIN"), "price-set")
    priced.add_argument("financier", type=_slug)
    priced.add_argument("gtin")
    priced.add_argument("price", help="unit price, e.g. 12.50")
    priced.add_argument("--currency", required=True)
    priced.add_argument(
        "--valid-from", type=_rfc3339, help="RFC 3339 time it holds from (default: now)"
    )
    price_list = op(price.add_parser("list", help="a financier's price list"), "price-list")
    price_list.add_argument("financier", type=_slug)

    offer = commands.add_parser("offer", help="offers (approvals to accept)").add_subparsers(
        dest="offer_command", required=True
    )
    accept = op(
        offer.add_parser("accept", help="accept an offer: draw it as a loan"), "offer-accept"
    )
    accept.add_argument("borrower", type=_slug)
    accept.add_argument("offer", type=int)
    offer_list = op(offer.add_parser("list", help="an org's offers"), "offer-list")
    offer_list.add_argument("org", type=_slug)

    receivable = commands.add_parser(
        "receivable", help="receivables: goods accepted by their buyer with a PO"
    ).add_subparsers(dest="receivable_command", required=True)
    listed_r = op(receivable.add_parser("list", help="an org's receivables"), "receivable-list")
    listed_r.add_argument("org", type=_slug)
    confirmed = op(
        receivable.add_parser("confirm", help="the buyer confirms it owes one"),
        "receivable-confirm",
    )
    confirmed.add_argument("buyer", type=_slug)
    confirmed.add_argument("receivable", type=int)
    financed = op(
        receivable.add_parser("finance", help="a financier advances against a confirmed one"),
        "receivable-finance",
    )
    financed.add_argument("financier", type=_slug)
    financed.add_argument("receivable", type=int)
    paid_r = op(
        receivable.add_parser("paid", help="record the buyer's payment (repays the advance)"),
        "receivable-paid",
    )
    paid_r.add_argument("financier", type=_slug)
    paid_r.add_argument("receivable", type=int)
    paid_r.add_argument("amount")

    programme = commands.add_parser("programme", help="the lending programme").add_subparsers(
        dest="programme_command", required=True
    )
    run_off = op(
        programme.add_parser(
            "run-off", help="no new loans, offers or limit increases; service what is outstanding"
        ),
        "run-off",
    )
    run_off.add_argument("--financier", type=_slug, help="only this financier's lines")
    run_off.add_argument("--reason", required=True)
    report = op(
        commands.add_parser("report", help="portfolio reports (every financier's)"), "report"
    )
    report.add_argument("report", choices=["exposure", "concentration", "aging", "runoff"])
    report.add_argument("--financier", type=_slug, help="only this financier's lines")
    report.add_argument("--by", choices=["financier", "borrower", "category"], default="financier")
    report.add_argument("--top", type=int, default=5, help="concentration: top N borrowers")
    report.add_argument("--as-of", type=_day, help="YYYY-MM-DD (default today, UTC)")
    report.add_argument("--csv", action="store_true", help="CSV instead of JSON")

    loan = commands.add_parser("loan", help="loans drawn on lines").add_subparsers(
        dest="loan_command", required=True
    )
    listed = op(
        loan.add_parser("list", help="an org's loans (as financier or borrower)"), "loan-list"
    )
    listed.add_argument("org", type=_slug)
    shown = op(
        loan.add_parser("show", help="one loan, as its financier or borrower sees it"), "loan-show"
    )
    shown.add_argument("org", type=_slug)
    shown.add_argument("loan", type=int)
    stated = op(
        loan.add_parser("statement", help="a loan as of a day (default today, UTC)"),
        "loan-statement",
    )
    stated.add_argument("loan", type=int)
    stated.add_argument("--as-of", type=_day, help="YYYY-MM-DD (a future day projects)")
    repaid = op(
        loan.add_parser("repay", help="record a repayment of one loan (the waterfall applies)"),
        "loan-repay",
    )
    repaid.add_argument("loan", type=int)
    repaid.add_argument("amount")
    repaid.add_argument(
        "--financier", type=_slug, help="as this financier (default: the loan's own)"
    )


# CPython's own default (sys.getrecursionlimit() in a fresh interpreter).
PYTHON_DEFAULT_RECURSION_LIMIT = 1000


def keep_recursion_limit() -> None:
    """Import py_ecc now and undo its recursion limit: importing it (through eth_account and
    web3) raises the limit to 100 000, deep enough for a recursive parser or a recursive repr
    to overflow the C stack and kill the process with SIGSEGV before any RecursionError. No code
    path of tracefin's needs more than Python's default."""
    importlib.import_module("py_ecc")
    sys.setrecursionlimit(PYTHON_DEFAULT_RECURSION_LIMIT)


def main(argv: Sequence[str] | None = None) -> None:
    keep_recursion_limit()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace, Settings], None] = args.handler
    try:
        # A compiled module (`make native`) built from other sources would run their old code.
        stale = stale_build_message(native_state(package_dir()))
        if stale is not None:
            raise CliError(stale)
        try:
            settings = Settings()  # read once, then passed down explicitly
        except ValidationError as exc:
            raise CliError(f"invalid settings: {exc.errors()[0]['msg']}") from None
        try:
            handler(args, settings)
        except MissingProductionSetting as exc:
            raise CliError(str(exc)) from None
    except CliError as exc:
        print(f"tracefin: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
