"""The console script: ``python -m signal_export.ingest`` serves the API; token helpers."""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from signal_bodies import signal

from signal_export.ingest.server import bind_socket
from signal_export.ingest.tokens import load_token_file

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signal_export.ingest", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=clean_env())


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EXT_SIG_")}


def test_new_token_adds_the_hash_to_the_file_and_prints_the_token_once(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    out = run_cli("new-token", "--tokens", str(path), "--name", "ml", "--strategy-id", "alpha",
                  "--strategy-id", "beta")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert out.stdout.count("\n") == 1 and len(token) >= 43  # the token, alone on stdout
    producer = load_token_file(path).authenticate(token)
    assert producer.name == "ml" and producer.strategy_ids == {"alpha", "beta"}
    assert token not in path.read_text() and token not in out.stderr  # the file: hash only


def test_hash_token_reads_stdin() -> None:
    out = run_cli("hash-token", stdin="abc\n")
    assert out.stdout.strip() == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert run_cli("hash-token", stdin="").returncode == 2


def test_serve_without_a_token_file_is_a_configuration_error(mongo_uri) -> None:
    out = run_cli("serve", "--mongo-uri", mongo_uri, "--env-file", "/nonexistent")
    assert out.returncode == 2 and "EXT_SIG_INGEST_TOKENS_FILE" in out.stderr


@pytest.mark.slow
def test_the_module_serves_the_api_until_sigterm(tmp_path, mongo_uri, mongo_client) -> None:
    token_out = run_cli("new-token", "--tokens", str(tmp_path / "tokens.yaml"), "--name", "desk",
                        "--strategy-id", "alpha")
    token = token_out.stdout.strip()
    sock = bind_socket()
    port = sock.getsockname()[1]
    sock.close()
    db = f"cli_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "signal_export.ingest", "--tokens", str(tmp_path / "tokens.yaml"),
         "--port", str(port), "--mongo-uri", mongo_uri, "--db", db, "--env-file", "/nonexistent"],
        cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        r = httpx.post(f"{url}/v1/signals", json=signal(),
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert mongo_client[db]["crypto_signals"].find_one()["source"] == "desk"
    finally:
        proc.send_signal(signals.SIGTERM)
        output, _ = proc.communicate(timeout=20)
        mongo_client.drop_database(db)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells why it ended
    assert proc.returncode in (0, -signals.SIGTERM), output
    assert "Finished server process" in output
    assert token not in output


def test_serve_names_a_duplicate_key_index_failure_and_an_unreachable_server_apart(
        tmp_path, mongo_uri, mongo_client) -> None:
    tokens = tmp_path / "tokens.yaml"
    assert run_cli("new-token", "--tokens", str(tokens), "--name", "desk",
                   "--strategy-id", "alpha").returncode == 0
    db = f"ingest_dups_{uuid.uuid4().hex[:8]}"
    doc = {"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1h", "ts": 1}
    mongo_client[db]["crypto_signals"].insert_many([dict(doc), dict(doc)])  # no index yet
    try:
        out = run_cli("serve", "--mongo-uri", mongo_uri, "--db", db, "--tokens", str(tokens),
                      "--port", "0", "--env-file", "/nonexistent")
        assert out.returncode == 3, out.stderr
        assert "same key" in out.stderr and "unreachable" not in out.stderr
    finally:
        mongo_client.drop_database(db)
    down = run_cli("serve", "--mongo-uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
                   "--tokens", str(tokens), "--port", "0", "--env-file", "/nonexistent")
    assert down.returncode == 3 and "unreachable at start" in down.stderr
