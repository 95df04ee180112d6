"""``docker/compose.yaml`` checked without a Docker engine: structure, secrets, every reference.

These machines cannot run containers, so each promise of the compose file is
checked statically: the services exist with health checks and restart
policies, the one-shot ``bootstrap-users`` runs before the others, every path
a service's command, health check or environment names exists in the image
(its file list is read from the Dockerfile: :mod:`deploy_image`), commands are
console scripts the image has and their flags parse with their own CLI,
every ``${VAR}`` is documented in ``configs/.env.example``, published ports
are unique and bound to localhost, secrets are files given only to the
services that use them, and no literal secret is written.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from deploy_image import image_contents

from signal_export.security.secret_scan import scan_text

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = REPO / "configs" / ".env.example"

CORE_SERVICES = {"mongo", "bootstrap-users", "exporter-scheduler", "freqtrade", "monitor",
                 "ingest"}
#: service -> exactly the secrets it is given (and uses)
SERVICE_SECRETS = {
    "mongo": {"mongo_root_password"},
    "bootstrap-users": {"mongo_admin_uri", "mongo_exporter_password", "mongo_strategy_password",
                        "mongo_monitor_password", "mongo_ingest_password"},
    "exporter-scheduler": {"mongo_exporter_uri"},
    "freqtrade": {"mongo_strategy_uri", "freqtrade_api_password", "freqtrade_jwt_secret",
                  "freqtrade_ws_token"},
    "monitor": {"mongo_monitor_uri", "freqtrade_api_password"},
    "ingest": {"mongo_ingest_uri", "ingest_tokens"},
}
VAR_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<mod>:?[-?][^}]*)?\}")
SECRET_NAME_RE = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|_URI)$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def image():
    return image_contents()


def app_services(services: dict) -> dict:
    """The services that run our image (all but mongo)."""
    return {n: s for n, s in services.items() if "build" in s}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def _host_path(source: str) -> Path:
    return (DOCKER / source).resolve()


def test_core_services_are_defined_with_the_right_images(services):
    assert set(services) == CORE_SERVICES
    assert services["mongo"]["image"].startswith("mongo:7")
    for name in CORE_SERVICES - {"mongo"}:
        build = services[name]["build"]
        assert (_host_path(build["context"]) / build["dockerfile"]).is_file(), name


def test_every_long_running_service_has_healthcheck_and_restart_policy(services):
    for name, service in services.items():
        if service.get("restart") == "no":  # one-shot
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_bootstrap_users_runs_once_before_every_service_that_uses_mongo(services):
    boot = services["bootstrap-users"]
    assert boot["restart"] == "no" and command(boot)[0] == "signal-bootstrap-users"
    assert boot["depends_on"] == {"mongo": {"condition": "service_healthy"}}
    for name, service in app_services(services).items():
        if name != "bootstrap-users":
            assert service["depends_on"]["bootstrap-users"] == {
                "condition": "service_completed_successfully"}, name
            assert service["depends_on"]["mongo"] == {"condition": "service_healthy"}, name


def test_mongo_gets_only_its_root_credentials_and_no_env_file(services):
    mongo = services["mongo"]
    assert "--auth" in command(mongo)
    assert mongo["environment"] == {
        "MONGO_INITDB_ROOT_USERNAME": "${MONGO_INITDB_ROOT_USERNAME:-root}",
        "MONGO_INITDB_ROOT_PASSWORD_FILE": "/run/secrets/mongo_root_password"}
    assert not any(":/docker-entrypoint-initdb.d" in v for v in mongo["volumes"]), (
        "an init script would need every service password inside the mongo container")
    for name, service in services.items():
        assert "env_file" not in service, f"{name} would receive every variable of .env"


def test_each_service_gets_exactly_the_secrets_it_uses(services, compose):
    declared = compose["secrets"]
    for name, service in services.items():
        given = set(service.get("secrets", []))
        assert given == SERVICE_SECRETS[name], name
        env = service.get("environment") or {}
        file_vars = {k: v for k, v in env.items() if k.endswith("_FILE")}
        used = {PurePosixPath(v).name for v in file_vars.values() if v.startswith("/run/secrets/")}
        assert used == given, f"{name}: secrets given {sorted(given)}, read {sorted(used)}"
        for key, value in env.items():
            if SECRET_NAME_RE.search(key):
                raise AssertionError(f"{name}: {key} passes a secret as a value; use {key}_FILE")
            assert "://" not in str(value) or "@" not in str(value), f"{name}: {key}"
    used_anywhere = set().union(*(set(s.get("secrets", [])) for s in services.values()))
    assert used_anywhere == set(declared), "declared secrets no service uses (or the reverse)"
    for secret in declared.values():
        assert set(secret) == {"file"} and secret["file"].startswith("./secrets/")


def test_secret_files_and_env_file_are_git_ignored(compose):
    paths = [_host_path(s["file"]) for s in compose["secrets"].values()]
    paths.append(REPO / ".env")
    for path in paths:
        rel = path.relative_to(REPO)
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(rel)],
                                 cwd=REPO).returncode
        assert ignored == 0, f"{rel} holds secrets and must be git-ignored"


def test_no_secret_is_interpolated_from_env_or_written_literally(services):
    text = COMPOSE.read_text()
    for match in VAR_RE.finditer(text):
        assert not SECRET_NAME_RE.search(match["name"]), (
            f"${{{match['name']}}}: secrets come from files, not from .env")
    assert scan_text("docker/compose.yaml", text) == []
    for path in [DOCKER / "Dockerfile", DOCKER / "make_secrets.py", DOCKER / "monitor.yaml",
                 DOCKER / "freqtrade.stack.json"]:
        assert scan_text(str(path.relative_to(REPO)), path.read_text()) == [], path


def test_every_variable_is_documented_in_env_example():
    used = {m["name"] for m in VAR_RE.finditer(COMPOSE.read_text())}
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    missing = sorted(used - documented)
    assert not missing, f"add to configs/.env.example: {missing}"


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


def test_commands_are_console_scripts_of_the_image(services, image):
    for name, service in app_services(services).items():
        assert command(service)[0] in image.scripts, f"{name}: {command(service)[0]}"
        test = (service.get("healthcheck") or {}).get("test") or []
        if test and not service["healthcheck"].get("disable"):
            assert test[1] in image.scripts, f"{name}: healthcheck {test[1]}"


def _paths_in(values) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.startswith("/app/")]


def test_every_path_the_stack_references_exists_in_the_image(services, image):
    """The monitor's old ``--config /app/docker/monitor.yaml`` was not in the image: a
    restart loop. Every /app path in commands, health checks and environment must be."""
    mounted = {v.split(":")[1] for s in services.values() for v in s.get("volumes", [])}
    for name, service in app_services(services).items():
        cmd = command(service)
        refs = _paths_in(cmd) + _paths_in((service.get("healthcheck") or {}).get("test", []))
        refs += _paths_in((service.get("environment") or {}).values())
        for flag in ("--db-url",):
            if flag in cmd:
                refs.append(str(PurePosixPath(cmd[cmd.index(flag) + 1].split("sqlite:///")[1])))
        for ref in refs:
            ref_path = PurePosixPath(ref)
            if any(ref_path.is_relative_to(m) for m in mounted):
                assert image.has(str(ref_path.parent)) or image.has(ref), f"{name}: {ref}"
                continue
            suffix = ref_path.suffix
            if suffix in (".sqlite", ".log"):  # written at run time: its directory must exist
                assert image.has(str(ref_path.parent)), f"{name}: {ref_path.parent}"
            else:
                assert image.has(ref), f"{name}: {ref} is not in the image"
    assert not image.has("/app/docker/no-such-file.yaml")


def test_files_the_stack_configs_name_exist_in_the_image(image):
    from signal_export.scheduler.jobs import load_jobs

    jobs_image = PurePosixPath("/app/docker/scheduler.jobs.yaml")
    assert image.has(str(jobs_image))
    jobs = load_jobs(image.files[str(jobs_image)])
    for job in jobs.jobs:
        rel = job.pipeline.resolve().relative_to(REPO).as_posix()
        assert image.has(f"/app/{rel}"), f"job {job.name}: pipeline {rel} not in the image"


def test_image_holds_the_product_only(image):
    tops = {PurePosixPath(p).parts[2] for p in (*image.files, *image.generated)}
    assert tops <= {"configs", "docker", "user_data", "requirements.runtime.lock"}, tops
    dev_sources = {"requirements.lock", "devservers", "tests", "scripts", "bench", "user_data"}
    assert not dev_sources & {PurePosixPath(s).parts[0] for s in image.copied_sources}
    for dev in ("devservers", "tests", "scripts", "bench", "signal_export", "research"):
        assert not image.has(f"/app/{dev}"), dev


def test_freqtrade_trades_dry_run_with_the_packaged_strategy(services, image):
    ft = services["freqtrade"]
    cmd = command(ft)
    assert cmd[:4] == ["signal-bridge", "freqtrade", "trade", "--dry-run"]
    assert cmd[cmd.index("--strategy") + 1] == "ExternalSignalStrategy"
    userdir = cmd[cmd.index("--userdir") + 1]
    assert image.has(f"{userdir}/strategies/ExternalSignalStrategy.py")
    assert not any("strategies" in v for v in ft.get("volumes", [])), "no host strategy mount"


def test_monitor_exposes_its_metrics_port(services, image):
    from signal_export.monitoring.config import parse_monitor_config

    monitor = services["monitor"]
    config_file = command(monitor)[command(monitor).index("--config") + 1]
    port = parse_monitor_config(yaml.safe_load(image.files[config_file].read_text())).metrics_port
    assert any(str(p).endswith(f":{port}") for p in monitor["ports"])
    assert f":{port}/metrics" in " ".join(monitor["healthcheck"]["test"])


def test_monitor_config_in_the_stack_is_valid(services, image):
    from signal_export.monitoring.config import parse_monitor_config

    cmd = command(services["monitor"])
    path = image.files[cmd[cmd.index("--config") + 1]]
    config = parse_monitor_config(yaml.safe_load(path.read_text()), source=str(path))
    assert config.metrics_address == "0.0.0.0" and config.metrics_port == 9108
    assert [b.url for b in config.bots] == ["http://freqtrade:8080"]


def test_our_services_command_lines_parse_with_their_own_cli(services):
    """A flag the CLI does not know would only show up when the container starts."""
    from freqtrade.commands import Arguments

    from signal_export.bridge import _parser as bridge_parser
    from signal_export.ingest.cli import _parser as ingest_parser
    from signal_export.monitoring.cli import parse_args as monitor_args
    from signal_export.scheduler.cli import parse_args as scheduler_args
    from signal_export.security.cli import _parser as bootstrap_parser

    def bridge(argv: list[str]) -> None:
        if argv[0] == "freqtrade":
            parsed = Arguments(argv[1:]).get_parsed_arg()
            assert parsed["command"] == argv[1]
        else:
            bridge_parser().parse_args(argv)

    parsers = {"signal-scheduler": scheduler_args, "signal-monitor": monitor_args,
               "signal-ingest": lambda a: ingest_parser().parse_args(a),
               "signal-bootstrap-users": lambda a: bootstrap_parser().parse_args(a),
               "signal-bridge": bridge}
    checked = set()
    for service in app_services(services).values():
        cmd = [VAR_RE.sub(lambda m: (m["mod"] or "")[2:], a) for a in command(service)]
        parsers[cmd[0]](list(cmd[1:]))  # argparse exits (SystemExit) on a bad flag
        checked.add(cmd[0])
    assert checked == set(parsers)
