"""Every entry point takes its URI and passwords from ``NAME_FILE`` (a mounted secret file).

The compose stack gives each service ``EXT_SIG_MONGO_URI_FILE`` (and the
monitor ``FREQTRADE_API_PASSWORD_FILE``, the bootstrap ``MONGO_ADMIN_URI_FILE``
and ``MONGO_*_PASSWORD_FILE``), never the value. One helper
(:func:`signal_export.security.secrets.env_value`) applies the convention;
these tests run each entry point with the URI only in a file: the exporter's
settings, the strategy's config, the monitor, ``signal-export``,
``signal-monitor``, ``signal-ingest``, ``signal-scheduler`` and the container
health check (Freqtrade's own ``FREQTRADE__*_FILE``: tests/packaging).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from signal_export.consumer.config import ConfigError, load_config
from signal_export.logs import redact_text
from signal_export.monitoring.channels import ChannelError, _secret
from signal_export.monitoring.freqtrade_api import FreqtradeApi
from signal_export.security.secrets import SecretError, env_value
from signal_export.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
URI_PASSWORD = "uri-Pw-from-a-file-7c41"  # pragma: allowlist secret


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("EXT_SIG_", "MARKET_", "FREQTRADE", "MONGO_")):
            monkeypatch.delenv(name)
    return monkeypatch


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text + "\n")
    return str(path)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EXT_SIG_", "MARKET_", "FREQTRADE", "MONGO_"))}
    return env | {"PYTHONPATH": str(REPO)} | extra


def test_exporter_settings_read_uris_and_any_variable_from_files(tmp_path, clean_env):
    uri = f"mongodb://exporter:{URI_PASSWORD}@db.example:27017/?authSource=admin"
    clean_env.setenv("EXT_SIG_MONGO_URI_FILE", _file(tmp_path, "uri", uri))
    clean_env.setenv("MARKET_MONGO_URI_FILE", _file(tmp_path, "market_uri", uri))
    clean_env.setenv("EXT_SIG_DB_FILE", _file(tmp_path, "db", "from_file"))
    settings = load_settings(env_file=None)
    assert (settings.mongo_uri, settings.market_uri, settings.db) == (uri, uri, "from_file")
    assert URI_PASSWORD not in redact_text(f"connecting with {URI_PASSWORD}")


def test_both_forms_or_an_unreadable_file_are_errors_naming_the_variable(tmp_path, clean_env):
    clean_env.setenv("EXT_SIG_MONGO_URI", "mongodb://a:1")
    clean_env.setenv("EXT_SIG_MONGO_URI_FILE", _file(tmp_path, "uri", "mongodb://b:2"))
    with pytest.raises(SecretError, match="EXT_SIG_MONGO_URI and EXT_SIG_MONGO_URI_FILE"):
        load_settings(env_file=None)
    with pytest.raises(ValueError, match="cannot read"):  # a config error for every CLI
        env_value("X", environ={"X_FILE": str(tmp_path / "missing")})
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"EXT_SIG_DB_FILE={_file(tmp_path, 'db', 'dotenv_db')}\n")
    clean_env.delenv("EXT_SIG_MONGO_URI")
    assert load_settings(env_file=dotenv).db == "dotenv_db"


def test_strategy_config_reads_the_uri_file(tmp_path):
    uri = f"mongodb://strategy:{URI_PASSWORD}@db.example:27017/"
    ft = {"timeframe": "1m", "ext_signals": {"strategy_ids": ["minute_rank"]}}
    env = {"EXT_SIG_MONGO_URI_FILE": _file(tmp_path, "uri", uri),
           "EXT_SIG_STRATEGY_ID_FILE": _file(tmp_path, "ids", "a,b")}
    cfg = load_config(ft, env=env)
    assert cfg.mongo_uri == uri and cfg.strategy_ids == ("a", "b")
    with pytest.raises(ConfigError, match="both set"):
        load_config(ft, env=env | {"EXT_SIG_MONGO_URI": "mongodb://x:1"})


def test_monitor_bot_password_and_alert_secrets_come_from_files(tmp_path, clean_env):
    clean_env.setenv("FREQTRADE_API_PASSWORD_FILE", _file(tmp_path, "pw", "bot-Pw-file-1234"))
    api = FreqtradeApi("dry-run", "http://127.0.0.1:9", "bridge",
                       password_env="FREQTRADE_API_PASSWORD")
    assert api._client._session.auth == ("bridge", "bot-Pw-file-1234")
    clean_env.setenv("ALERT_HOOK_URL_FILE", _file(tmp_path, "hook", "https://hooks.example/T0k"))
    assert _secret(None, "ALERT_HOOK_URL", "webhook") == "https://hooks.example/T0k"
    with pytest.raises(ChannelError, match="ALERT_OTHER_URL_FILE"):
        _secret(None, "ALERT_OTHER_URL", "webhook")


def test_signal_export_cli_connects_with_the_uri_file(tmp_path, mongo_uri):
    env = _env(EXT_SIG_MONGO_URI_FILE=_file(tmp_path, "uri", mongo_uri),
               EXT_SIG_DB=f"t_file_{os.getpid()}")
    ok = subprocess.run([BIN / "signal-export", "latest", "--strategy-id", "nothing_here"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "no signals" in ok.stdout, ok.stderr[-2000:]
    env["EXT_SIG_MONGO_URI_FILE"] = _file(tmp_path, "bad_uri", f"mongodb://127.0.0.1:{_port()}"
                                          "/?serverSelectionTimeoutMS=300")
    bad = subprocess.run([BIN / "signal-export", "latest", "--strategy-id", "nothing_here"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0  # so the file, not a default, decided where it connected


def test_monitor_status_uses_the_uri_file(tmp_path, mongo_uri):
    env = _env(EXT_SIG_MONGO_URI_FILE=_file(tmp_path, "uri", mongo_uri))
    proc = subprocess.run([BIN / "signal-monitor", "status"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "mongo up" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_scheduler_exports_with_the_uri_file(tmp_path, mongo_uri, mongo_client):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({
        "name": "file_uri", "universe": ["BTC/USDT", "ETH/USDT"], "timeframe": "1m",
        "start": "2026-03-01T00:00:00Z", "end": "2026-03-03T00:00:00Z",
        "data": {"kind": "synthetic", "seed": 3},
        "factors": [{"name": "rsi", "params": {"period": 14}}],
        "generator": {"type": "rank", "params": {"factor": "rsi_14", "top_n": 1}},
        "export": {"strategy_id": "file_uri", "version": 1},
        "report": {"output_dir": str(tmp_path / "report")}}))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"name": "file_uri", "pipeline": str(pipeline),
                                              "max_backfill_bars": 1}]}))
    db = f"t_sched_file_{os.getpid()}"
    env = _env(EXT_SIG_MONGO_URI_FILE=_file(tmp_path, "uri", mongo_uri), EXT_SIG_DB=db)
    try:
        proc = subprocess.run([BIN / "signal-scheduler", "--jobs", str(jobs), "--once"],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=240)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert mongo_client[db]["scheduler_runs"].find_one({"status": "ok"})
    finally:
        mongo_client.drop_database(db)


def test_ingest_api_starts_with_the_uri_file(tmp_path, mongo_uri):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"producers": [{
        "name": "t", "token_hash": "sha256:" + "0" * 64, "strategy_ids": ["x"]}]}))
    port = _port()
    env = _env(EXT_SIG_MONGO_URI_FILE=_file(tmp_path, "uri", mongo_uri),
               EXT_SIG_INGEST_TOKENS_FILE=str(tokens), EXT_SIG_DB=f"t_ingest_{os.getpid()}")
    proc = subprocess.Popen([BIN / "signal-ingest", "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health",
                                            timeout=2) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0][-2000:]
                assert time.monotonic() < deadline, "ingest API did not come up"
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_container_healthcheck_reads_the_uri_file(tmp_path, mongo_uri):
    check = [sys.executable, str(REPO / "docker" / "healthcheck.py"), "--mongo-env",
             "EXT_SIG_MONGO_URI", "--timeout", "2"]
    env = _env(EXT_SIG_MONGO_URI_FILE=_file(tmp_path, "uri", mongo_uri))
    assert subprocess.run(check, env=env, capture_output=True, timeout=60).returncode == 0
    env["EXT_SIG_MONGO_URI_FILE"] = _file(tmp_path, "bad", f"mongodb://127.0.0.1:{_port()}")
    bad = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "unhealthy" in bad.stderr


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
