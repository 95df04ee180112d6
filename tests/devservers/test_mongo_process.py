"""The local MongoDB dev server as a process: CLI, durability, TTL expiry.

Each test starts its own server (``LocalMongoProcess``), so the file is skipped
when ``MONGO_TEST_URI`` selects a real MongoDB. Durability means: a write that
was acknowledged survives ``kill -9`` of the server and a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymongo
import pytest
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from devservers.mongo.process import LocalMongoProcess

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_TEST_URI")), reason="needs its own local server process"
)
ROOT = Path(__file__).resolve().parents[2]


def _client(server: LocalMongoProcess) -> pymongo.MongoClient:
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000, tz_aware=True)


def test_help_says_it_is_a_development_server():
    out = subprocess.run([sys.executable, "-m", "devservers.mongo", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "DEVELOPMENT SERVER, NOT A PRODUCTION DATABASE" in " ".join(out.split())
    for flag in ("--host", "--port", "--data-dir", "--log-file", "--auth", "--ttl-interval"):
        assert flag in out


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_the_uri_first_and_stops_cleanly(tmp_path, stop_signal):
    proc = subprocess.Popen(
        [sys.executable, "-m", "devservers.mongo", "--port", "0", "--data-dir",
         str(tmp_path / "d"), "--log-file", str(tmp_path / "log.txt")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("mongodb://127.0.0.1:") and first.endswith("/")
        client = pymongo.MongoClient(first, serverSelectionTimeoutMS=5000)
        assert client.admin.command("ping")["ok"] == 1.0
        client.close()
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def test_acknowledged_writes_survive_kill_9_and_restart(tmp_path):
    server = LocalMongoProcess(tmp_path / "data")
    server.start()
    try:
        client = _client(server)
        coll = client.app.crypto_signals
        coll.create_index([("pair", 1), ("ts", 1)], unique=True)
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        coll.insert_many([{"pair": "BTC/USDT", "ts": t0 + timedelta(minutes=i), "v": i}
                          for i in range(500)])
        result = coll.bulk_write([UpdateOne({"pair": "ETH/USDT", "ts": t0 + timedelta(minutes=i)},
                                            {"$set": {"v": -i}}, upsert=True)
                                  for i in range(300)], ordered=False)
        assert result.upserted_count == 300
        coll.update_one({"pair": "BTC/USDT", "ts": t0}, {"$set": {"v": "last"}})
        port = server.port
        client.close()
        server.kill()
        assert not server.running
        server.start()
        assert server.port == port
        client = _client(server)
        coll = client.app.crypto_signals
        assert coll.count_documents({}) == 800
        assert coll.find_one({"pair": "BTC/USDT", "ts": t0})["v"] == "last"
        assert {ix["name"] for ix in coll.list_indexes()} == {"_id_", "pair_1_ts_1"}
        with pytest.raises(DuplicateKeyError):
            coll.insert_one({"pair": "ETH/USDT", "ts": t0})
        client.close()
    finally:
        server.stop()


def test_restart_keeps_port_and_data(tmp_path):
    with LocalMongoProcess(tmp_path / "data") as server:
        client = _client(server)
        client.app.c.insert_one({"_id": 1})
        client.close()
        port = server.port
        server.restart()
        assert server.port == port
        client = _client(server)
        assert client.app.c.find_one() == {"_id": 1}
        client.close()


def test_ttl_index_expires_old_documents(tmp_path):
    with LocalMongoProcess(tmp_path / "data", ttl_interval=0.2) as server:
        client = _client(server)
        coll = client.app.sessions
        coll.create_index("expires_at", expireAfterSeconds=0)
        now = datetime.now(UTC)
        coll.insert_many([
            {"_id": "old", "expires_at": now - timedelta(minutes=5)},
            {"_id": "future", "expires_at": now + timedelta(hours=1)},
            {"_id": "not-a-date", "expires_at": "yesterday"},
            {"_id": "no-field"},
        ])
        deadline = time.monotonic() + 15
        while coll.find_one({"_id": "old"}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(d["_id"] for d in coll.find()) == ["future", "no-field", "not-a-date"]
        client.close()


def test_ttl_uses_expire_after_seconds(tmp_path):
    with LocalMongoProcess(tmp_path / "data", ttl_interval=0.2) as server:
        client = _client(server)
        coll = client.app.signals
        coll.create_index("ts", expireAfterSeconds=3600)
        now = datetime.now(UTC)
        coll.insert_many([{"_id": "stale", "ts": now - timedelta(hours=2)},
                          {"_id": "fresh", "ts": now - timedelta(minutes=30)}])
        deadline = time.monotonic() + 15
        while coll.count_documents({}) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [d["_id"] for d in coll.find()] == ["fresh"]
        client.close()


def test_a_second_server_on_the_same_data_dir_refuses_to_start(tmp_path):
    with LocalMongoProcess(tmp_path / "data"):
        second = LocalMongoProcess(tmp_path / "data", startup_timeout=10)
        with pytest.raises(RuntimeError, match="did not start"):
            second.start()
        assert "in use by another local-mongod" in second.log_file.read_text()
