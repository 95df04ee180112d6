"""The local MongoDB dev server under hostile or heavy load: limits hold, work stops.

Each test runs its own server process (flags: ``--max-connections``,
``--message-timeout``, ``--idle-timeout``) and talks to it with real pymongo or
raw sockets: oversized message headers are refused before the body is
allocated (server RSS checked), the connection cap closes the connection over
it, a client stalled in the middle of a message (or idle) is dropped,
``maxTimeMS`` ends a long scan with code 50, a client that hangs up ends its
scan, and SIGTERM stops the server during a long scan within 2 s with its
committed data intact. Skipped when ``MONGO_TEST_URI`` selects a real MongoDB.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bson
import pymongo
import pytest
from pymongo.errors import AutoReconnect, ExecutionTimeout, NetworkTimeout, OperationFailure

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_TEST_URI")), reason="needs its own local server process"
)
ROOT = Path(__file__).resolve().parents[2]
OP_MSG = 2013
GUARD_S = 20.0  # a bound that only a hung test ever reaches; the spec bounds are below


class Server:
    def __init__(self, proc: subprocess.Popen, uri: str, data_dir: Path) -> None:
        self.proc = proc
        self.uri = uri
        self.data_dir = data_dir
        host_port = uri.removeprefix("mongodb://").rstrip("/")
        self.address = (host_port.rsplit(":", 1)[0], int(host_port.rsplit(":", 1)[1]))

    def client(self, **kwargs) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=10_000, **kwargs)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def run_server(data_dir: Path, *flags: str) -> Iterator[Server]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devservers.mongo", "--port", "0", "--data-dir", str(data_dir),
         "--log-file", str(data_dir / "server.log"), *flags],
        cwd=ROOT, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    try:
        line = b""
        deadline = time.monotonic() + GUARD_S
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        uri = line.decode().strip()
        assert uri.startswith("mongodb://"), uri
        yield Server(proc, uri, data_dir)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(GUARD_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def wait_for(predicate: Callable[[], object], what: str, timeout: float = GUARD_S) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (EOF or reset), waiting at most GUARD_S."""
    sock.settimeout(GUARD_S)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def hello_message(request_id: int = 1) -> bytes:
    body = b"\x00\x00\x00\x00" + b"\x00" + bson.encode({"hello": 1, "$db": "admin"})
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_MSG) + body


def hello_round_trip(sock: socket.socket) -> dict:
    sock.sendall(hello_message())
    header = _recv_exactly(sock, 16)
    length = struct.unpack("<i", header[:4])[0]
    body = _recv_exactly(sock, length - 16)
    return bson.decode(body[5:])


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "server closed the connection"
        buf += chunk
    return buf


def server_status(client: pymongo.MongoClient) -> dict:
    return client.admin.command("serverStatus")


# A filter no index answers whose matcher cost per document is high (a 5,000-value $in on an
# unindexed field): a scan over SLOW_DOCS documents runs for minutes unless something stops it.
SLOW_DOCS = 20_000
SLOW_FILTER = {"v": {"$in": [f"nomatch-{i}" for i in range(5_000)]}}


def _load(client: pymongo.MongoClient, n: int = SLOW_DOCS) -> None:
    client.db.items.insert_many([{"i": i, "v": f"value-{i}"} for i in range(n)], ordered=False)


# --------------------------------------------------------------------------- messages


def test_oversized_headers_are_refused_before_allocating(tmp_path):
    with run_server(tmp_path / "d") as server:
        client = server.client()
        client.admin.command("ping")
        before = server.rss_kb()
        socks = []
        for length in (2**31 - 1, 1_000_000_000, 48_000_001):  # over MAX_MESSAGE_SIZE
            sock = socket.create_connection(server.address)
            sock.sendall(struct.pack("<iiii", length, 1, 0, OP_MSG))
            socks.append(sock)
        for sock in socks:
            assert closed_by_server(sock)
            sock.close()
        # Declared within the limit but never sent: memory follows the bytes that arrive.
        pending = []
        for _ in range(3):
            sock = socket.create_connection(server.address)
            sock.sendall(struct.pack("<iiii", 47_000_000, 1, 0, OP_MSG) + b"\x00" * 1000)
            pending.append(sock)
        assert client.admin.command("ping")["ok"] == 1.0  # the server still answers
        growth_mb = (server.rss_kb() - before) / 1024
        assert growth_mb < 40, f"server RSS grew by {growth_mb:.0f} MB"
        for sock in pending:
            sock.close()
        assert "message length 2147483647 outside" in server.log()
        client.close()


def test_connection_cap_closes_connections_over_it(tmp_path):
    with run_server(tmp_path / "d", "--max-connections", "3") as server:
        held = [socket.create_connection(server.address) for _ in range(3)]
        for sock in held:
            assert hello_round_trip(sock)["ok"] == 1.0
        extra = socket.create_connection(server.address)
        assert closed_by_server(extra)
        extra.close()
        for sock in held:  # the accepted ones still work
            assert hello_round_trip(sock)["ok"] == 1.0
            sock.close()
        client = server.client()  # room again once they are gone
        assert client.admin.command("ping")["ok"] == 1.0
        client.close()
        assert "too many open connections" in server.log()


def test_stalled_half_message_and_idle_connections_are_dropped(tmp_path):
    with run_server(tmp_path / "d", "--message-timeout", "0.5", "--idle-timeout", "2") as server:
        half_header = socket.create_connection(server.address)
        half_header.sendall(hello_message()[:10])
        half_body = socket.create_connection(server.address)
        half_body.sendall(hello_message()[:30])
        idle = socket.create_connection(server.address)
        assert hello_round_trip(idle)["ok"] == 1.0
        assert closed_by_server(half_header)
        assert closed_by_server(half_body)
        assert closed_by_server(idle)
        for sock in (half_header, half_body, idle):
            sock.close()
        log = server.log()
        assert "in the middle of a message header" in log
        assert "in the middle of a message (" in log
        assert "closing connection idle" in log
        client = server.client()
        assert client.admin.command("ping")["ok"] == 1.0
        client.close()


# --------------------------------------------------------------------------- long operations


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("slow")) as server:
        client = server.client()
        _load(client)
        client.close()
        yield server


def _idle(client: pymongo.MongoClient) -> bool:
    """No read or write running on the server but the serverStatus asking."""
    active = server_status(client)["globalLock"]["activeClients"]
    return active["readers"] == 0 and active["writers"] == 0


def test_max_time_ms_expires_a_long_scan(slow_server):
    client = slow_server.client()
    before = server_status(client)["metrics"]["operation"]["killedDueToMaxTimeMSExpired"]
    with pytest.raises(ExecutionTimeout) as info:
        list(client.db.items.find(SLOW_FILTER).max_time_ms(200))
    assert info.value.code == 50
    assert "operation exceeded time limit" in str(info.value)
    with pytest.raises(ExecutionTimeout):
        client.db.items.count_documents(SLOW_FILTER, maxTimeMS=200)
    with pytest.raises(ExecutionTimeout):
        client.db.items.distinct("i", SLOW_FILTER, maxTimeMS=200)
    with pytest.raises(ExecutionTimeout):
        list(client.db.items.aggregate([{"$match": SLOW_FILTER}], maxTimeMS=200))
    after = server_status(client)["metrics"]["operation"]["killedDueToMaxTimeMSExpired"]
    assert after - before == 4
    wait_for(lambda: _idle(client), "the expired scans to release the server")
    with pytest.raises(OperationFailure) as bad:
        client.db.command("find", "items", maxTimeMS=-1)
    assert bad.value.code == 2
    # a generous limit does not get in the way
    assert client.db.items.count_documents({"i": {"$lt": 10}}, maxTimeMS=60_000) == 10
    client.close()


def test_a_client_that_hangs_up_ends_its_scan(slow_server):
    watcher = slow_server.client()
    before = server_status(watcher)["metrics"]["operation"]["killedDueToClientDisconnect"]
    impatient = slow_server.client(socketTimeoutMS=300)
    with pytest.raises((NetworkTimeout, AutoReconnect)):
        list(impatient.db.items.find(SLOW_FILTER))
    impatient.close()
    wait_for(lambda: server_status(watcher)["metrics"]["operation"][
        "killedDueToClientDisconnect"] > before, "the server to stop the abandoned scan")
    wait_for(lambda: _idle(watcher), "the abandoned scan to release the server")
    watcher.close()


def test_sigterm_during_a_long_scan_stops_within_2s_and_keeps_data(tmp_path):
    data_dir = tmp_path / "d"
    with run_server(data_dir) as server:
        client = server.client()
        _load(client)
        client.db.marks.insert_one({"_id": "committed", "n": 1})
        scanning = server.client(retryReads=False)
        failure: list[BaseException] = []

        def scan() -> None:
            try:
                list(scanning.db.items.find(SLOW_FILTER))
            except Exception as exc:  # noqa: BLE001 - the scan must fail, the test looks at how
                failure.append(exc)

        thread = threading.Thread(target=scan)
        thread.start()
        wait_for(lambda: server_status(client)["globalLock"]["activeClients"]["readers"] >= 1,
                 "the scan to start")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(GUARD_S)
        took = time.monotonic() - started
        thread.join(GUARD_S)
        scanning.close()
        client.close()
        assert server.proc.returncode == 0
        print(f"SIGTERM to exit: {took:.3f} s")
        assert took < 2.0, f"SIGTERM took {took:.2f} s"
        assert failure, "the scan should have been interrupted"
    with run_server(data_dir) as again:
        client = again.client()
        assert client.db.marks.find_one({"_id": "committed"}) == {"_id": "committed", "n": 1}
        assert client.db.items.count_documents({}) == SLOW_DOCS
        client.close()
