"""docker-compose.yml, the Dockerfile and .env.example, checked without a Docker engine."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.mqtt_link import parse_mqtt_url
from ledger import contracts
from tracefin.broker_auth import (
    FINANCE_USERNAME,
    HEALTH_USERNAME,
    INGEST_ROLE,
    dynsec_config,
    ingest_role,
    ingest_username,
)
from tracefin.cli import build_parser
from tracefin.processes.api import api_config
from tracefin.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
# `$$` (a literal `$`), `${NAME}`, `${NAME:-default}`, `${NAME:?error}`, … and bare `$NAME`.
REFERENCE = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
PORT = re.compile(
    r"^(?:(?P<ip>\$\{[^}]*\}|[0-9.]+|\[[0-9a-fA-F:]*\]):)?"
    r"(?P<host>[0-9-]+):(?P<container>[0-9-]+)(?:/(?:tcp|udp))?$"
)
ONE_SHOT_RESTARTS = (None, "no", "on-failure")


def load_env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


ENV_EXAMPLE = load_env_example()
# What an operator would put in .env: the documented defaults, secrets filled in.
# Secrets as an operator generates them (production settings refuse weak or known ones).
SAMPLE_ENV = {
    name: value
    or (
        "0x" + secrets.token_hex(32)
        if name.endswith("PRIVATE_KEY")
        else "http://besu-rpc.consortium.internal:8545"
        if name.endswith("_URL")
        else secrets.token_urlsafe(32)
    )
    for name, value in ENV_EXAMPLE.items()
}
# What each process uses of the .env secrets, besides POSTGRES_PASSWORD (every process's
# database): the chain key signs (contracts, anchors, pledges), the journal key seals and checks
# the finance journal, broker passwords log in. Each service must get exactly these.
SECRETS_USED = {
    "cmd_db_migrate": set(),
    "cmd_chain_deploy": {"CHAIN_PRIVATE_KEY", "JOURNAL_KEY"},
    "cmd_ingest": {"MQTT_INGEST_{worker}_PASSWORD", "INGEST_SHARE_GROUP_SECRET"},
    "cmd_anchor": {"CHAIN_PRIVATE_KEY"},
    "cmd_finance": {"JOURNAL_KEY", "MQTT_FINANCE_PASSWORD"},
    "cmd_capture_worker": set(),
    "cmd_subscription_worker": set(),
    "cmd_api": {"CHAIN_PRIVATE_KEY", "JOURNAL_KEY", "METRICS_TOKEN"},
}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution (the subset this file may use)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg, value = match.group("op"), match.group("arg") or "", env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?"):
            if not value and (op == ":?" or value is None):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return value or ""
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    return REFERENCE.sub(substitute, text)


def references(text: str) -> set[str]:
    return {
        match.group("braced") or match.group("bare")
        for match in REFERENCE.finditer(text)
        if match.group(0) != "$$"
    }


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    assert isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tracefin_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from the Dockerfile: each runs one `tracefin` subcommand."""
    built = {name: service for name, service in services.items() if "build" in service}
    assert built, "no service is built from the Dockerfile"
    return built


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def optional_dependencies(service: dict[str, Any]) -> set[str]:
    """The `required: false` dependencies (Compose 2.20+): waited for only when they run."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return set()
    return {name for name, spec in raw.items() if spec.get("required", True) is False}


def is_secret(name: str) -> bool:
    return bool(re.search(r"PASSWORD|KEY|SECRET|TOKEN", name))


def secrets_of(service: dict[str, Any]) -> set[str]:
    """The .env secrets a service's environment refers to."""
    return {
        name
        for text in strings(service.get("environment") or {})
        for name in references(text)
        if is_secret(name)
    }


def parsed_command(name: str, service: dict[str, Any]) -> Any:
    command = service.get("command")
    assert isinstance(command, list), f"{name}: give the command as a list (exec form)"
    assert command[0] == "tracefin", f"{name}: {command}"
    try:
        return build_parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"{name}: `{' '.join(command)}` is not a tracefin command line")


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") in ONE_SHOT_RESTARTS


def test_every_tracefin_service_runs_a_real_subcommand(
    tracefin_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in tracefin_services.items():
        assert callable(parsed_command(name, service).handler), name


def test_the_production_shape_is_all_there(tracefin_services: dict[str, dict[str, Any]]) -> None:
    handlers: dict[str, list[Any]] = {}
    for name, service in tracefin_services.items():
        args = parsed_command(name, service)
        handlers.setdefault(args.handler.__name__, []).append((name, args))
    expected = {
        "cmd_db_migrate",
        "cmd_chain_deploy",
        "cmd_ingest",
        "cmd_anchor",
        "cmd_finance",
        "cmd_api",
    }
    assert expected <= set(handlers)
    # Two ingest workers in one shared subscription, each with its own stable client id.
    ingest = handlers["cmd_ingest"]
    client_ids = [args.client_id for _, args in ingest]
    assert len(ingest) >= 2
    assert None not in client_ids
    assert len(set(client_ids)) == len(client_ids)
    for handler, entries in handlers.items():
        for name, _ in entries:
            one_shot = handler in ("cmd_db_migrate", "cmd_chain_deploy")
            assert is_one_shot(tracefin_services[name]) == one_shot, f"{name}: restart policy"


def test_tracefin_variables_are_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    fields = {f"TRACEFIN_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        unknown = {key for key in environment(service) if key.startswith("TRACEFIN_")} - fields
        assert not unknown, f"{name} sets variables tracefin does not read: {sorted(unknown)}"


def test_each_tracefin_service_passes_the_production_settings_of_its_process(
    tracefin_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production settings refuse a missing secret only where a process asks for it: ask for
    everything each process uses, as it does at start."""
    for name, service in tracefin_services.items():
        with monkeypatch.context() as patch:
            for key in [key for key in os.environ if key.startswith("TRACEFIN_")]:
                patch.delenv(key)
            for key, value in environment(service).items():
                patch.setenv(key, interpolate(value, SAMPLE_ENV))
            settings = Settings(_env_file=None)
        assert settings.environment == "production", name
        handler = parsed_command(name, service).handler.__name__
        used = {secret.split("_{")[0] for secret in SECRETS_USED[handler]}
        if "CHAIN_PRIVATE_KEY" in used:
            assert settings.chain_key() == SAMPLE_ENV["CHAIN_PRIVATE_KEY"], name
            assert settings.chain_rpc_url == SAMPLE_ENV["CHAIN_RPC_URL"], name
        if "JOURNAL_KEY" in used:
            assert settings.journal_seal_key() == SAMPLE_ENV["JOURNAL_KEY"].encode(), name
        if handler == "cmd_ingest":
            assert settings.share_group() == SAMPLE_ENV["INGEST_SHARE_GROUP_SECRET"], name
            assert settings.mqtt_url is not None
        if handler == "cmd_api":
            # The API's own production checks: the chain URL, and the metrics token it alone
            # needs (and refuses to start without).
            assert api_config(settings).metrics_token == SAMPLE_ENV["METRICS_TOKEN"], name


def test_each_service_gets_only_the_secrets_it_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    """Issue 17 item 7: every service received the chain key and the journal key."""
    for name, service in services.items():
        got = secrets_of(service)
        if "build" in service:
            args = parsed_command(name, service)
            handler = args.handler.__name__
            worker = (getattr(args, "client_id", None) or "").removeprefix("tracefin-ingest-")
            expected = {secret.format(worker=worker) for secret in SECRETS_USED[handler]}
            assert got == expected | {"POSTGRES_PASSWORD"}, name
        elif name == "db":
            assert got == {"POSTGRES_PASSWORD"}, name
        elif name == "chain-fund":
            assert got == {"CHAIN_PRIVATE_KEY"}, name  # funds the key's address on anvil
        elif name == "broker":
            assert got == {"MQTT_HEALTH_PASSWORD"}, name  # its health check's account
        else:
            assert got == set(), name


def test_the_chain_is_external_and_anvil_runs_only_in_the_dev_profile(
    services: dict[str, dict[str, Any]],
) -> None:
    """Issue 17 item 7: the production stack ran anvil, whose unauthenticated
    anvil_setStorageAt rewrote an anchored batch root."""
    anvil_services = {
        name
        for name, service in services.items()
        if "foundry" in str(service.get("image", "")) or "anvil" in strings(service)
    }
    assert anvil_services == {"chain", "chain-fund"}
    for name, service in services.items():
        in_dev_only = service.get("profiles") == ["dev"]
        assert in_dev_only == (name in anvil_services), (
            f"{name}: profiles {service.get('profiles')}"
        )
        if in_dev_only:
            continue
        # Nothing in the default profile needs the devnet, except through optional edges.
        hard = set(depends_on(service)) - optional_dependencies(service)
        assert not hard & anvil_services, f"{name} requires {hard & anvil_services}"
        url = environment(service).get("TRACEFIN_CHAIN_RPC_URL")
        if url is not None:
            assert references(url) == {"CHAIN_RPC_URL"}, name
            assert ":?" in url, f"{name}: CHAIN_RPC_URL must be required, not defaulted"
    assert ENV_EXAMPLE["CHAIN_RPC_URL"] == "", "no default chain: the operator names theirs"


def test_only_the_ingest_workers_hold_broker_credentials(
    tracefin_services: dict[str, dict[str, Any]],
) -> None:
    """Each account to the process the ACL grants it for: the ingest workers' shared
    subscriptions, finance's alerts topic (its own account, its own password); no other."""
    alerts_accounts = {}
    for name, service in tracefin_services.items():
        env = environment(service)
        handler = parsed_command(name, service).handler.__name__
        if "TRACEFIN_ALERTS_MQTT_URL" in env:
            alerts = parse_mqtt_url(interpolate(env["TRACEFIN_ALERTS_MQTT_URL"], SAMPLE_ENV))
            alerts_accounts[handler] = (alerts.host, alerts.username, alerts.password)
        if "TRACEFIN_MQTT_URL" not in env:
            continue
        # The workers' plain listener on the compose network (devices use the TLS one).
        address = parse_mqtt_url(interpolate(env["TRACEFIN_MQTT_URL"], SAMPLE_ENV))
        assert (address.host, address.port) == ("broker", 1883), name
        if handler == "cmd_ingest":
            # Its own account, whose role grants the shared subscriptions (broker_accounts).
            worker = int(str(address.username).removeprefix("tracefin-ingest-"))
            assert address.username == ingest_username(worker), name
            assert address.password == SAMPLE_ENV[f"MQTT_INGEST_{worker}_PASSWORD"], name
        else:
            assert (address.username, address.password) == (None, None), name
    assert alerts_accounts == {
        "cmd_finance": ("broker", "tracefin-finance", SAMPLE_ENV["MQTT_FINANCE_PASSWORD"])
    }
    roles = {role["rolename"]: role for role in broker_accounts(2)["roles"]}
    assert roles[FINANCE_USERNAME]["acls"] == [
        {"acltype": "publishClientSend", "topic": "tf/+/alerts", "allow": True}
    ]


def broker_accounts(workers: int) -> dict[str, Any]:
    """The dynamic-security file `tracefin broker accounts --ingest-workers N` writes from .env
    (docs/deployment.md), here from .env.example's sample values."""
    passwords = {
        ingest_username(n): SAMPLE_ENV[f"MQTT_INGEST_{n}_PASSWORD"] for n in range(1, workers + 1)
    }
    passwords[FINANCE_USERNAME] = SAMPLE_ENV["MQTT_FINANCE_PASSWORD"]
    passwords[HEALTH_USERNAME] = SAMPLE_ENV["MQTT_HEALTH_PASSWORD"]
    return dynsec_config(SAMPLE_ENV["INGEST_SHARE_GROUP_SECRET"], passwords)


def volume_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(source, target, read_only) of each mount."""
    for mount in service.get("volumes") or []:
        if isinstance(mount, str):
            source, _, rest = mount.partition(":")
            target, _, mode = rest.partition(":")
            yield source, target, "ro" in mode.split(",")
        else:
            yield mount["source"], mount["target"], bool(mount.get("read_only"))


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def test_named_volumes_are_declared_and_used(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    used = {
        source
        for service in services.values()
        for source, _, _ in volume_mounts(service)
        if not is_bind(source)
    }
    declared = set(compose.get("volumes") or {})
    assert used == declared


def test_bind_mounts_are_repo_config_mounted_read_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for source, _, read_only in volume_mounts(service):
            if is_bind(source):
                assert source.startswith("./"), f"{name}: {source} is outside the repository"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
                assert read_only, f"{name}: mount {source} read-only"


def test_the_broker_finds_every_file_its_config_names(
    services: dict[str, dict[str, Any]],
) -> None:
    broker = services["broker"]
    mounts = {target: ROOT / source for source, target, _ in volume_mounts(broker)}

    def on_host(path: str) -> Path:
        for target, source in mounts.items():
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return source / Path(path).relative_to(target)
        raise AssertionError(f"{path} is not mounted into the broker")

    conf = on_host("/mosquitto/config/mosquitto.conf")  # the image's default config path
    settings = [
        line.split()
        for line in conf.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for words in settings:
        if words[0] in ("certfile", "keyfile"):
            # The deployment's own certificate and key: mounted, never committed.
            host = on_host(words[1])
            ignored = (host.parent / ".gitignore").read_text().split()
            assert "*" in ignored, f"{host.parent} must git-ignore its contents"
        if words[0] in ("plugin_opt_config_file", "persistence_location"):
            host = on_host(words[1])
            if words[0] == "plugin_opt_config_file":
                # The accounts: made per deployment (they are secret), never committed.
                ignored = (host.parent / ".gitignore").read_text().split()
                assert host.name in ignored, f"{host} must be git-ignored"
        # No second source of accounts or ACLs beside the plugin: it defers what it does not
        # grant to them, which would widen it.
        assert words[0] not in ("password_file", "acl_file", "auth_plugin"), words
    assert ["plugin", "/usr/lib/mosquitto_dynamic_security.so"] in settings
    # The health check logs in to a listener the config declares, as the health account, whose
    # password the broker container gets.
    kind, command = broker["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    words = command.split()
    assert ["listener", words[words.index("-p") + 1]] in settings
    assert words[words.index("-u") + 1] == HEALTH_USERNAME
    topic = words[words.index("-t") + 1].strip("'").replace("$$", "$")
    roles = {role["rolename"]: role for role in broker_accounts(2)["roles"]}
    assert {(acl["acltype"], acl["topic"]) for acl in roles[HEALTH_USERNAME]["acls"]} == {
        ("subscribeLiteral", topic),
        ("publishClientReceive", topic),
    }
    assert "MQTT_HEALTH_PASSWORD" in environment(broker)


def test_depends_on_targets_exist_with_sensible_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            dependency = services[target]
            if target in optional_dependencies(service):
                # Only a service of a profile may be optional; one always there must be required.
                assert dependency.get("profiles"), f"{name} -> {target}: required: false"
            elif dependency.get("profiles"):
                assert service.get("profiles"), f"{name} needs {target}, of a profile only"
            if is_one_shot(dependency):
                expected = "service_completed_successfully"
            elif "healthcheck" in dependency:
                expected = "service_healthy"
            else:
                expected = "service_started"
            assert condition == expected, f"{name} -> {target}: {condition}, not {expected}"
    # No cycles: a topological order exists.
    pending = {name: set(depends_on(service)) for name, service in services.items()}
    while pending:
        ready = [name for name, needs in pending.items() if not needs & set(pending)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        for name in ready:
            del pending[name]


def test_published_ports_bind_loopback_or_a_documented_variable(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert isinstance(port, str), f"{name}: use the HOST_IP:HOST:CONTAINER form"
            match = PORT.match(port)
            assert match, f"{name}: {port}"
            ip = match.group("ip")
            assert ip, f"{name}: {port} binds every interface"
            if ip.startswith("${"):
                # Deliberate: a variable of .env.example whose default is loopback.
                variable = references(ip).pop()
                assert ENV_EXAMPLE.get(variable) == LOOPBACK, f"{name}: document {variable}"
                assert interpolate(ip, {}) == LOOPBACK, f"{name}: {ip} defaults to loopback"
            else:
                assert ip == LOOPBACK, f"{name}: {port}"


def test_the_api_listens_where_its_port_is_published(
    tracefin_services: dict[str, dict[str, Any]],
) -> None:
    api = tracefin_services["api"]
    env = environment(api)
    assert env["TRACEFIN_API_HOST"] == "0.0.0.0"  # inside its container, for the published port
    (port,) = api["ports"]
    match = PORT.match(port)
    assert match
    assert match.group("container") == env["TRACEFIN_API_PORT"]


def test_compose_variables_are_documented_in_env_example(compose: dict[str, Any]) -> None:
    used = {name for text in strings(compose) for name in references(text)}
    assert used == set(ENV_EXAMPLE), "every ${VAR} in .env.example and every entry used"
    # tracefin's Settings also read `.env` from the working directory: a TRACEFIN_* line there
    # would reach local `tracefin` runs and tests.
    assert not [name for name in ENV_EXAMPLE if name.startswith("TRACEFIN_")]
    secrets = [name for name in ENV_EXAMPLE if re.search(r"PASSWORD|KEY|SECRET|TOKEN", name)]
    assert secrets
    assert all(ENV_EXAMPLE[name] == "" for name in secrets), "no secret values in .env.example"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and any(c.isdigit() for c in tag)


def test_dockerfile_is_multi_stage_from_pinned_images_and_runs_as_non_root() -> None:
    stages: list[str] = []
    user = None
    for instruction, arguments in dockerfile():
        if instruction == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            image = words[0]
            assert image in stages or is_pinned(image), f"unpinned base image {image}"
            stages.append(words[2] if len(words) == 3 and words[1].upper() == "AS" else image)
            user = None  # USER does not carry over to the next stage
        elif instruction == "USER":
            user = arguments
    assert len(stages) >= 2, "a build stage and a runtime stage"
    assert user is not None, "the runtime stage must set USER"
    assert user.split(":")[0] not in ("root", "0"), user


def test_images_from_registries_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" not in service:
            assert is_pinned(service["image"]), f"{name}: pin {service['image']}"


def test_the_image_holds_every_package_and_the_contract_artifacts() -> None:
    instructions = dockerfile()
    copies = [
        arguments.split()
        for instruction, arguments in instructions
        if instruction == "COPY" and not arguments.startswith("--from")
    ]
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allowlist: nothing reaches the builder (.env, .git, .venv, …) unless named.
    assert ignore[0] == "*"
    allowed = {entry[1:].rstrip("/") for entry in ignore if entry.startswith("!")}
    assert ".env" not in allowed
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert source in allowed, f"COPY {source}: re-include it in .dockerignore"
    copied = {source for *sources, _ in copies for source in sources}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied, f"the image lacks the {pattern} packages"

    # ledger/contracts.py looks for the artifacts beside the ledger package; in the image that
    # package is in the virtualenv's site-packages.
    relative = contracts.ARTIFACTS_DIR.relative_to(Path(contracts.__file__).resolve().parents[1])
    (base,) = {arguments.split()[0] for i, arguments in instructions if i == "FROM"}
    python = re.match(r"python:(\d+\.\d+)", base)
    assert python, base
    (venv,) = re.findall(r"python -m venv (\S+)", " ".join(a for _, a in instructions))
    site_packages = f"{venv}/lib/python{python.group(1)}/site-packages"
    destinations = {dest for *sources, dest in copies if str(relative) in sources}
    assert destinations == {f"{site_packages}/{relative}"}
    env = " ".join(arguments for instruction, arguments in instructions if instruction == "ENV")
    assert f"PATH={venv}/bin:" in env, "the virtualenv's tracefin must be on PATH"


def test_each_ingest_worker_has_its_own_account_bound_to_its_client_id(
    tracefin_services: dict[str, dict[str, Any]],
) -> None:
    """The broker makes a client id its username (use_username_as_clientid): a worker's
    --client-id must be its account's name, or its session would change name under it; and
    every worker needs its own account, or two would share one session."""
    accounts, groups = [], set()
    for name, service in tracefin_services.items():
        args = parsed_command(name, service)
        if args.handler.__name__ != "cmd_ingest":
            continue
        env = environment(service)
        address = parse_mqtt_url(interpolate(env["TRACEFIN_MQTT_URL"], SAMPLE_ENV))
        assert address.username == args.client_id, name
        accounts.append(address.username)
        groups.add(interpolate(env["TRACEFIN_INGEST_SHARE_GROUP"], SAMPLE_ENV))
    assert len(set(accounts)) == len(accounts) >= 2
    # One group for all of them, and a secret of the deployment, not the default name.
    (group,) = groups
    assert group == SAMPLE_ENV["INGEST_SHARE_GROUP_SECRET"]
    # The accounts file made for this many workers gives each the role of exactly that group.
    config = broker_accounts(len(accounts))
    roles = {client["username"]: client["roles"] for client in config["clients"]}
    for account in accounts:
        assert roles[account] == [{"rolename": INGEST_ROLE}], account
    assert ingest_role(group) in config["roles"]


def test_every_broker_listener_for_accounts_binds_client_ids_to_usernames() -> None:
    blocks = listener_blocks((ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text())
    assert blocks
    for listener, settings in blocks.items():
        assert settings.get("use_username_as_clientid") == "true", listener


def listener_blocks(conf: str) -> dict[str, dict[str, str]]:
    """mosquitto.conf's settings by listener (per_listener_settings): `listener 1883` -> {…}."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in conf.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.strip().partition(" ")
        if key == "listener":
            current = blocks.setdefault(value, {})
        elif current is not None:
            current[key] = value
    return blocks


def test_devices_reach_the_broker_over_tls_only(services: dict[str, dict[str, Any]]) -> None:
    blocks = listener_blocks((ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text())
    tls = blocks["8883"]
    assert tls["certfile"].startswith("/mosquitto/certs/"), tls
    assert tls["keyfile"].startswith("/mosquitto/certs/"), tls
    assert tls["tls_version"] in ("tlsv1.2", "tlsv1.3")
    # One authentication for all listeners (per_listener_settings would make Mosquitto 2.0.12+
    # drop what an offline session should get: mosquitto.conf), with no anonymous access.
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "per_listener_settings false" in conf
    assert "allow_anonymous false" in conf
    assert not any("allow_anonymous" in settings for settings in blocks.values())
    assert set(blocks) == {"8883", "1883"}
    # Only the TLS listener is published; the plain one serves the compose network.
    published = []
    for port in services["broker"].get("ports") or []:
        match = PORT.match(port)
        assert match, port
        published.append(match.group("container"))
    assert published == ["8883"]
