"""``docker/compose.yaml`` checked without a Docker engine: structure and every reference.

These machines cannot run containers, so each promise of the compose file is
checked statically: the services exist with health checks and restart
policies, every file it mounts or builds from exists, every ``${VAR}`` is
documented in ``configs/.env.example``, published ports are unique and bound
to localhost, commands name console scripts that ``pyproject.toml`` declares,
each service gets only its own MongoDB user, and no literal secret is written.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from signal_export.security.secret_scan import scan_text

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = REPO / "configs" / ".env.example"

CORE_SERVICES = {"mongo", "exporter-scheduler", "freqtrade", "monitor", "ingest"}
#: service -> the MongoDB service user whose credentials it must (only) receive
SERVICE_MONGO_USER = {"exporter-scheduler": "EXPORTER", "freqtrade": "STRATEGY",
                      "monitor": "MONITOR", "ingest": "INGEST"}
#: Executables that are not our console scripts.
EXTERNAL_COMMANDS = {"freqtrade", "mongod", "python", "mongosh"}
VAR_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<mod>:?[-?][^}]*)?\}")
SECRET_VAR_RE = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _declared_scripts() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else list(command)


def _host_path(source: str) -> Path:
    return (DOCKER / source).resolve()


def test_core_services_are_defined_with_the_right_images(services):
    assert set(services) >= CORE_SERVICES
    assert services["mongo"]["image"].startswith("mongo:7")
    for name in CORE_SERVICES - {"mongo"}:
        build = services[name]["build"]
        assert (_host_path(build["context"]) / build["dockerfile"]).is_file(), name


def test_every_long_running_service_has_healthcheck_and_restart_policy(services):
    for name, service in services.items():
        if "tools" in service.get("profiles", []):
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_healthcheck_scripts_and_mounted_files_exist(services, compose):
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test") or []
        for arg in test:
            if arg.startswith("/app/"):
                assert (REPO / arg.removeprefix("/app/")).exists(), f"{name}: {arg}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert _host_path(source).exists(), f"{name}: volume source {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for arg in _command(service):
            if arg.startswith("/app/") and not arg.startswith("/app/user_data/"):
                assert (REPO / arg.removeprefix("/app/")).exists(), f"{name}: {arg}"


def test_mongo_runs_with_auth_and_the_init_script(services):
    mongo = services["mongo"]
    assert "--auth" in _command(mongo)
    init = [v for v in mongo["volumes"] if ":/docker-entrypoint-initdb.d" in v]
    assert init, "no init script directory mounted"
    scripts = sorted(_host_path(init[0].split(":")[0]).glob("*.js"))
    assert [s.name for s in scripts] == ["10-create-users.js"]
    env_files = [e["path"] if isinstance(e, dict) else e for e in mongo["env_file"]]
    assert env_files == ["../.env"]


def test_env_file_and_secret_files_are_git_ignored(services, compose):
    paths = [_host_path(e["path"] if isinstance(e, dict) else e)
             for s in services.values() for e in s.get("env_file", [])]
    paths += [_host_path(s["file"]) for s in compose.get("secrets", {}).values()]
    assert paths
    for path in paths:
        rel = path.relative_to(REPO)
        ignored = subprocess.run(["git", "check-ignore", "-q", str(rel)], cwd=REPO).returncode
        assert ignored == 0, f"{rel} holds secrets and must be git-ignored"


def test_every_variable_is_documented_in_env_example():
    used = {m["name"] for m in VAR_RE.finditer(COMPOSE.read_text())}
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    missing = sorted(used - documented)
    assert not missing, f"add to configs/.env.example: {missing}"


def test_secret_variables_have_no_defaults(services):
    for match in VAR_RE.finditer(COMPOSE.read_text()):
        name, mod = match["name"], match["mod"] or ""
        if SECRET_VAR_RE.search(name):
            assert mod.startswith(":?"), f"${{{name}}} must be required (:?), not defaulted"


def test_published_ports_are_unique_and_bound_to_localhost(services):
    host_ports = []
    for name, service in services.items():
        for port in service.get("ports", []):
            resolved = VAR_RE.sub(lambda m: (m["mod"] or "").lstrip(":-"), str(port))
            ip, host, container = resolved.rsplit(":", 2)
            assert ip == "127.0.0.1", f"{name}: {port} must bind to 127.0.0.1"
            assert host.isdigit() and container.isdigit(), f"{name}: {port}"
            host_ports.append(host)
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert {"monitor", "freqtrade", "ingest", "mongo"} <= {
        n for n, s in services.items() if s.get("ports")}


def test_commands_name_declared_console_scripts(services):
    declared = _declared_scripts()
    used = {_command(s)[0] for s in services.values() if _command(s)}
    unknown = sorted(used - declared - EXTERNAL_COMMANDS)
    assert not unknown, f"commands without a console script in pyproject.toml: {unknown}"
    assert {"signal-scheduler", "signal-monitor", "signal-ingest", "freqtrade"} <= used


def test_freqtrade_runs_dry_run_with_the_mounted_strategy(services):
    ft = services["freqtrade"]
    command = _command(ft)
    assert command[:3] == ["freqtrade", "trade", "--dry-run"]
    assert command[command.index("--strategy") + 1] == "ExternalSignalStrategy"
    config = command[command.index("--config") + 1]
    assert (REPO / config.removeprefix("/app/")).is_file()
    mounts = [v for v in ft["volumes"] if v.startswith("../user_data/strategies:")]
    assert mounts and mounts[0].endswith(":ro")
    assert (_host_path(mounts[0].split(":")[0]) / "ExternalSignalStrategy.py").is_file()


def test_each_service_gets_only_its_own_mongo_user(services):
    for name, key in SERVICE_MONGO_USER.items():
        env = services[name]["environment"]
        uri = env["EXT_SIG_MONGO_URI"]
        assert f"MONGO_{key}_USER" in uri and f"MONGO_{key}_PASSWORD" in uri, name
        text = yaml.safe_dump(env)
        others = {f"MONGO_{k}_PASSWORD" for k in SERVICE_MONGO_USER.values()} - {
            f"MONGO_{key}_PASSWORD"}
        leaked = sorted(o for o in others | {"MONGO_INITDB_ROOT_PASSWORD"} if o in text)
        assert not leaked, f"{name} receives {leaked}"
        assert "env_file" not in services[name], f"{name} would receive every secret in .env"


def test_monitor_exposes_its_metrics_port(services):
    from signal_export.monitoring.config import parse_monitor_config

    monitor = services["monitor"]
    config_file = _command(monitor)[_command(monitor).index("--config") + 1]
    port = parse_monitor_config(yaml.safe_load(
        (DOCKER / Path(config_file).name).read_text())).metrics_port
    assert any(str(p).endswith(f":{port}") for p in monitor["ports"])
    assert f":{port}/metrics" in " ".join(monitor["healthcheck"]["test"])


def test_no_literal_secrets_in_deployment_files():
    for path in [COMPOSE, DOCKER / "Dockerfile", DOCKER / "mongo-init/10-create-users.js"]:
        assert scan_text(str(path.relative_to(REPO)), path.read_text()) == [], path
    for key, value in _all_env_values(yaml.safe_load(COMPOSE.read_text())):
        if SECRET_VAR_RE.search(key) or key.endswith("_URI"):
            literal = VAR_RE.sub("", value)
            assert not re.search(r"://[^:/@]*:[^@$]+@", literal), f"{key} has a literal password"
            if SECRET_VAR_RE.search(key):
                assert VAR_RE.fullmatch(value) or value == "", f"{key}={value!r} is a literal"


def _all_env_values(compose: dict):
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            yield key, str(value)


def test_our_services_command_lines_parse_with_their_own_cli(services):
    """A flag the CLI does not know would only show up when the container starts."""
    from signal_export.ingest.cli import _parser as ingest_parser
    from signal_export.monitoring.cli import parse_args as monitor_args
    from signal_export.scheduler.cli import parse_args as scheduler_args
    from signal_export.security.cli import _parser as bootstrap_parser

    parsers = {"signal-scheduler": scheduler_args, "signal-monitor": monitor_args,
               "signal-ingest": lambda a: ingest_parser().parse_args(a),
               "signal-bootstrap-users": lambda a: bootstrap_parser().parse_args(a)}
    checked = set()
    for service in services.values():
        command = _command(service)
        if command and command[0] in parsers:
            parsers[command[0]](list(command[1:]))  # argparse exits (SystemExit) on a bad flag
            checked.add(command[0])
    assert checked == set(parsers)


def test_monitor_config_in_the_stack_is_valid(services):
    from signal_export.monitoring.config import parse_monitor_config

    command = _command(services["monitor"])
    path = REPO / "docker" / Path(command[command.index("--config") + 1]).name
    config = parse_monitor_config(yaml.safe_load(path.read_text()), source=str(path))
    assert config.metrics_address == "0.0.0.0" and config.metrics_port == 9108
    assert [b.url for b in config.bots] == ["http://freqtrade:8080"]
