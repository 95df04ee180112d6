"""The compose stack as a whole: coherent, its secrets generated and used, and documented as it is.

- The scheduler exports what the bot trades and what the monitor watches
  (same strategy id, timeframe, pairs), read from the files the image holds.
- ``docker/make_secrets.py`` writes exactly the secret files compose mounts,
  with URIs that carry the passwords the bootstrap gives each user.
- ``bootstrap-users`` run the way compose runs it (its command and
  environment from compose.yaml, its ``/run/secrets`` files from
  make_secrets) against an auth-enabled server creates users that have
  exactly their rights, reached through the generated URIs.
- ``docs/PRODUCTION.md``'s service table (commands, secrets, ports) and
  variables equal compose.yaml, and every file the deployment docs name exists.
"""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path, PurePosixPath

import pytest
import yaml
from deploy_image import image_contents
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from signal_export.contract import to_pair
from signal_export.security.bootstrap import SERVICE_USERS, plan_user_roles

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
PRODUCTION = REPO / "docs" / "PRODUCTION.md"
TESTING = REPO / "docs" / "TESTING.md"
VAR_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _load_make_secrets():
    """docker/make_secrets.py (a host script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_secrets", DOCKER / "make_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_secrets = _load_make_secrets()


def command(name: str) -> list[str]:
    return list(SERVICES[name]["command"])


def resolve(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}`` interpolation."""
    env = env or {}
    return VAR_RE.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), str(value))


def test_the_scheduler_exports_what_the_bot_trades_and_the_monitor_watches():
    from freqtrade.configuration.load_config import load_from_files

    from signal_export.consumer.config import load_config as load_strategy_config
    from signal_export.monitoring.config import load_monitor_config
    from signal_export.scheduler.jobs import load_job_module, load_jobs

    image = image_contents()
    jobs_path = image.files[command("exporter-scheduler")[2]]
    jobs = load_jobs(jobs_path)
    module = load_job_module(jobs.job_module)
    pipelines = [module.job_config(j) for j in jobs.jobs if j.enabled]
    exported = {(p.export.strategy_id, p.timeframe) for p in pipelines}

    ft = command("freqtrade")
    configs = [str(image.files[ft[i + 1]]) for i, a in enumerate(ft) if a == "--config"]
    merged = load_from_files(configs)
    strategy = load_strategy_config(merged, env={})  # the block is valid for the strategy
    traded = {(sid, strategy.timeframe) for sid in strategy.strategy_ids}
    assert traded == exported, (traded, exported)
    for pipeline in pipelines:
        assert {to_pair(s) for s in pipeline.universe} == set(
            merged["exchange"]["pair_whitelist"])
    assert not {"EXT_SIG_STRATEGY_ID", "FREQTRADE__TIMEFRAME"} & set(
        SERVICES["freqtrade"]["environment"]), "the compose env would override the stack"

    monitor_cmd = command("monitor")
    monitor = load_monitor_config(image.files[monitor_cmd[monitor_cmd.index("--config") + 1]])
    assert {(s.strategy_id, s.timeframe) for s in monitor.strategies} == exported
    (bot,) = monitor.bots
    api = merged["api_server"]
    assert bot.url == f"http://freqtrade:{api['listen_port']}" and bot.username == api["username"]
    assert f"127.0.0.1:{api['listen_port']}/api/v1/ping" in " ".join(
        SERVICES["freqtrade"]["healthcheck"]["test"])
    monitor_roles = plan_user_roles("s", "m")["monitor"]
    assert not monitor.writeback and {r["role"] for r in monitor_roles} == {"read"}, (
        "write-back with a read-only monitor user fails at every cycle")


def _compose_secret_files() -> dict[str, str]:
    """secret name -> file name in docker/secrets."""
    return {name: PurePosixPath(spec["file"]).name for name, spec in COMPOSE["secrets"].items()}


def test_make_secrets_writes_exactly_the_files_compose_mounts(tmp_path):
    directory = tmp_path / "secrets"
    written = make_secrets.write_secrets(directory, environ={})
    assert set(written) == set(_compose_secret_files().values())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((directory / n).stat().st_mode) == 0o644 for n in written)
    read = {n: (directory / n).read_text().rstrip("\n") for n in written}

    root_user = resolve(SERVICES["mongo"]["environment"]["MONGO_INITDB_ROOT_USERNAME"])
    assert read["mongo_admin_uri"] == (f"mongodb://{root_user}:{read['mongo_root_password']}"
                                       "@mongo:27017/?authSource=admin")
    boot_env = SERVICES["bootstrap-users"]["environment"]
    for user in SERVICE_USERS:
        name = resolve(boot_env[user.name_env])
        assert name == user.default_name == make_secrets.SERVICE_USERS[user.key][1]
        password = read[f"mongo_{user.key}_password"]
        assert len(password) == 48
        assert read[f"mongo_{user.key}_uri"] == (f"mongodb://{name}:{password}@mongo:27017/"
                                                 "?authSource=admin")
    from signal_export.ingest.tokens import load_token_file

    assert len(load_token_file(directory / "ingest.tokens.yaml")) == 0

    assert make_secrets.write_secrets(directory, environ={}) == []  # never overwrites
    rotated = make_secrets.write_secrets(directory, environ={}, rotate=True)
    assert set(rotated) == set(written) - {"ingest.tokens.yaml"}


def _service_env(service: str, secrets_dir: Path, names: dict[str, str]) -> dict[str, str]:
    files = _compose_secret_files()
    env = {}
    for key, value in SERVICES[service]["environment"].items():
        value = resolve(value, names)
        if value.startswith("/run/secrets/"):
            value = str(secrets_dir / files[PurePosixPath(value).name])
        env[key] = value
    return env


@pytest.fixture
def stack_users(auth_server, db_names):
    tag = uuid.uuid4().hex[:8]
    names = {u.name_env: f"{u.key}_{tag}" for u in SERVICE_USERS}
    signals_db, market_db = db_names
    names |= {"EXT_SIG_DB": signals_db, "MARKET_DB": market_db}
    yield names
    admin = MongoClient(auth_server.admin_uri, serverSelectionTimeoutMS=5000)
    try:
        for user in SERVICE_USERS:
            admin.admin.command("dropUser", names[user.name_env])
        for db in db_names:
            admin.drop_database(db)
    except OperationFailure:
        pass
    finally:
        admin.close()


def test_bootstrap_service_as_compose_runs_it_gives_each_user_exactly_its_rights(
        tmp_path, auth_server, stack_users):
    secrets_dir = tmp_path / "secrets"
    make_secrets.write_secrets(secrets_dir, environ=stack_users)
    # the mongo image created the root user from mongo_root_password; here: the test server's
    (secrets_dir / "mongo_admin_uri").write_text(auth_server.admin_uri + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           **_service_env("bootstrap-users", secrets_dir, stack_users)}
    argv = [resolve(a, stack_users) for a in command("bootstrap-users")]
    proc = subprocess.run([Path(sys.executable).with_name(argv[0]), *argv[1:]], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for user in SERVICE_USERS:
        assert (secrets_dir / f"mongo_{user.key}_password").read_text().strip() not in (
            proc.stdout + proc.stderr)

    signals_db, market_db = stack_users["EXT_SIG_DB"], stack_users["MARKET_DB"]
    can_write = {"exporter": {signals_db, market_db}, "strategy": set(), "monitor": set(),
                 "ingest": {signals_db}}
    for key, writable in can_write.items():
        uri = (secrets_dir / f"mongo_{key}_uri").read_text().strip().replace(
            "@mongo:27017/", f"@{auth_server.hosts}/")
        client = auth_server.client(uri)
        try:
            client[signals_db]["crypto_signals"].find_one()
            for db in (signals_db, market_db):
                if db == market_db and key in ("strategy", "ingest"):
                    continue  # no role on the market database at all
                if db in writable:
                    client[db]["probe"].insert_one({"by": key})
                else:
                    with pytest.raises(OperationFailure) as denied:
                        client[db]["probe"].insert_one({"by": key})
                    assert denied.value.code == 13, (key, db)
        finally:
            client.close()


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_production_doc_service_table_equals_compose():
    rows = _table_rows(PRODUCTION.read_text())
    assert set(rows) == set(SERVICES)
    for name, (cmd, secrets, port) in rows.items():
        assert cmd.strip("`") == " ".join(command(name)), name
        assert set(re.findall(r"`([a-z_]+)`", secrets)) == set(SERVICES[name]["secrets"]), name
        published = [VAR_RE.search(p)["name"] for p in SERVICES[name].get("ports", [])]
        documented = re.findall(r"`([A-Z_]+)`", port)
        assert documented == published, name


def test_production_doc_names_every_compose_variable_and_existing_files():
    text = PRODUCTION.read_text()
    compose_vars = {m["name"] for m in VAR_RE.finditer((DOCKER / "compose.yaml").read_text())}
    assert {v for v in compose_vars if f"`{v}`" not in text} == set()
    assert "python3 docker/make_secrets.py" in text
    for line in text.splitlines():
        if line.strip().startswith("docker compose"):
            assert "-f docker/compose.yaml" in line, line
    for doc in (PRODUCTION, TESTING):
        for ref in re.findall(r"`((?:docker|configs|scripts|docs|tests|\.github)/[^`\s]*)`",
                              doc.read_text()):
            if ref.startswith("docker/secrets"):
                continue  # written by make_secrets.py, git-ignored
            assert (REPO / ref).exists(), f"{doc.name} names {ref}, which does not exist"
