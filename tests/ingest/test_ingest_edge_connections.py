"""The ingest edge against a real uvicorn server over raw sockets: idle and slow connections are
closed, a slow body is dropped, the connection cap holds, proxy headers are not trusted by
default, and unauthenticated bodies are refused without being read (memory stays bounded)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import tracemalloc

import pytest
from edge_helpers import connect, head, read_answer, seconds_until_closed, served
from ingest_helpers import TOKENS
from signal_bodies import signal

from signal_export.ingest.server import ServerLimits

AUTH = f"Authorization: Bearer {TOKENS['desk']}"


def test_an_idle_connection_is_closed_after_the_header_timeout() -> None:
    with served(ServerLimits(header_timeout_s=0.5)) as (server, app), connect(server) as sock:
        elapsed = seconds_until_closed(sock, limit=10)
    assert 0.3 <= elapsed <= 5, elapsed
    assert app.requests == 0


def test_a_request_head_trickled_in_is_cut_off_at_the_header_timeout() -> None:
    with served(ServerLimits(header_timeout_s=0.6)) as (server, app), connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def trickle() -> None:  # one header byte every 0.1 s: each one is "activity"
            try:
                while not stop.is_set():
                    sock.send(b"X-Slow: 1\r\n"[:1])
                    time.sleep(0.1)
            except OSError:
                pass

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        elapsed = seconds_until_closed(sock, limit=10)
        stop.set()
        thread.join(5)
    assert elapsed <= 5, "a trickled request head kept the connection open"
    assert app.requests == 0


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    limits = ServerLimits(keep_alive_s=0.5, header_timeout_s=30)
    with served(limits) as (server, _), connect(server) as sock:
        sock.sendall(head("GET", "/metrics"))
        assert read_answer(sock).status == 200
        elapsed = seconds_until_closed(sock, limit=10)
    assert elapsed <= 5, elapsed


def test_a_kept_alive_connection_serves_the_next_request_within_the_timeouts() -> None:
    limits = ServerLimits(keep_alive_s=2, header_timeout_s=2)
    with served(limits) as (server, _), connect(server) as sock:
        for _ in range(3):
            sock.sendall(head("GET", "/metrics"))
            assert read_answer(sock).status == 200
            time.sleep(0.3)


def test_a_body_trickled_in_is_dropped_at_the_body_timeout_with_408() -> None:
    body = json.dumps(signal()).encode()
    with served(body_timeout_s=0.8) as (server, app), connect(server) as sock:
        sock.sendall(head("POST", "/v1/signals", AUTH, "Content-Type: application/json",
                          f"Content-Length: {len(body)}"))
        t0 = time.monotonic()
        answer = None
        for byte in body:  # one byte every 0.1 s: the deadline is for the whole body
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                answer = read_answer(sock)
                break
            except TimeoutError:
                continue
        elapsed = time.monotonic() - t0
        assert answer is not None, "the slow body was never answered"
        assert answer.status == 408, answer.text
        assert json.loads(answer.body)["error"] == "timeout"
        assert answer.headers.get("connection") == "close"
        assert seconds_until_closed(sock, limit=5) < 5  # and the connection is closed
    assert elapsed < 5
    assert app.body_bytes < len(body)


def test_the_connection_cap_answers_503_beyond_it() -> None:
    limits = ServerLimits(max_connections=3, header_timeout_s=30)
    with served(limits) as (server, _):
        idle = [connect(server) for _ in range(3)]
        time.sleep(0.2)
        with connect(server) as sock:
            sock.sendall(head("GET", "/metrics"))
            assert read_answer(sock).status == 503
        for sock in idle:
            sock.close()
        time.sleep(0.3)
        with connect(server) as sock:
            sock.sendall(head("GET", "/metrics"))
            assert read_answer(sock).status == 200


def test_an_oversized_request_head_is_refused_and_closed() -> None:
    with served(ServerLimits(max_header_bytes=4096)) as (server, app), connect(server) as sock:
        # h11 counts the bytes of a head still incomplete (a complete one read at once passes)
        sock.sendall(head("GET", "/metrics", "X-Pad: " + "a" * 8000)[:-4])
        answer = read_answer(sock)
        assert answer.status == 400
        assert seconds_until_closed(sock, limit=5) < 5
    assert app.requests == 0


def test_an_unknown_header_token_is_refused_before_the_body_is_sent() -> None:
    with served() as (server, app), connect(server) as sock:
        sock.sendall(head("POST", "/v1/signals", "Authorization: Bearer wrong",
                          "Content-Length: 1048576"))
        answer = read_answer(sock)  # no body sent: answered from the head alone
    assert answer.status == 401 and "invalid_token" in answer.headers["www-authenticate"]
    assert app.body_bytes == 0


def test_a_large_body_without_a_header_token_is_refused_unread() -> None:
    with served() as (server, app):
        with connect(server) as sock:
            sock.sendall(head("POST", "/v1/signals", "Content-Type: text/plain",
                              "Content-Length: 1048576"))
            answer = read_answer(sock)
        assert answer.status == 401, answer.text
        assert "8192 bytes" in json.loads(answer.body)["message"]
        # chunked (no Content-Length): refused once more than 8 KiB has arrived
        with connect(server) as sock:
            sock.sendall(head("POST", "/v1/signals", "Transfer-Encoding: chunked"))
            for _ in range(4):
                sock.sendall(b"1000\r\n" + b" " * 4096 + b"\r\n")
            answer = read_answer(sock)
        assert answer.status == 401, answer.text
    assert app.largest <= 8192 + 2 * 4096


def test_a_hundred_unauthenticated_1mb_bodies_are_not_held_in_memory() -> None:
    """The report: 100 unauthenticated 1 MB bodies held 114 MB. Now each is refused from its
    head; the app reads none of it and the server's allocations stay far below 100 MB."""
    body = b"[" + b" " * (1024 * 1024 - 2) + b"]"
    request = head("POST", "/v1/signals", "Content-Type: application/json",
                   f"Content-Length: {len(body)}")
    statuses: list[int] = []
    lock = threading.Lock()

    def post(url: str) -> None:
        with connect(url, timeout=60) as sock:
            sock.sendall(request)
            with contextlib.suppress(OSError):
                sock.sendall(body)
            status = read_answer(sock).status
        with lock:
            statuses.append(status)

    with served(ServerLimits(max_connections=500)) as (server, app):
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            threads = [threading.Thread(target=post, args=(server.url,)) for _ in range(100)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # 401 until the address has used up its budget of refusals (20 at once), 429 after
    assert len(statuses) == 100 and set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) >= 20 and statuses.count(429) >= 1
    assert app.body_bytes == 0
    print(f"peak traced allocations during the flood: {peak / 2**20:.1f} MiB")
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_x_forwarded_for_is_ignored_by_default(make_ingest) -> None:
    ingest = make_ingest()
    r = ingest.post(signal(), headers={"X-Forwarded-For": "203.0.113.9",
                                       "X-Forwarded-Proto": "https"})
    assert r.status_code == 200, r.text
    assert ingest.runs.find_one()["extra"]["remote"] == "127.0.0.1"


def test_x_forwarded_for_is_used_only_from_a_configured_proxy(make_ingest) -> None:
    ingest = make_ingest(server_limits=ServerLimits(forwarded_allow_ips="127.0.0.1"))
    r = ingest.post(signal(), headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200, r.text
    assert ingest.runs.find_one()["extra"]["remote"] == "203.0.113.9"
    # another proxy configured (same database): the peer is not it, so its header is ignored
    other = make_ingest(server_limits=ServerLimits(forwarded_allow_ips="10.9.9.9"))
    r = other.post(signal(ts="2026-11-20T11:00:00Z"), headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200, r.text
    assert sorted(run["extra"]["remote"] for run in other.runs.find()) == [
        "127.0.0.1", "203.0.113.9"]


def test_server_limits_reach_uvicorn() -> None:
    from signal_export.ingest.server import HeaderDeadlineH11Protocol, uvicorn_config

    config = uvicorn_config(None, "127.0.0.1", 0, limits=ServerLimits(  # type: ignore[arg-type]
        header_timeout_s=3, keep_alive_s=4, max_connections=7, max_header_bytes=9000))
    assert (config.timeout_keep_alive, config.limit_concurrency,
            config.h11_max_incomplete_event_size) == (4, 7, 9000)
    assert config.proxy_headers is False
    assert issubclass(config.http, HeaderDeadlineH11Protocol) and config.http.header_timeout_s == 3
    trusted = uvicorn_config(None, "127.0.0.1", 0,  # type: ignore[arg-type]
                             limits=ServerLimits(forwarded_allow_ips="10.0.0.1"))
    assert trusted.proxy_headers is True and trusted.forwarded_allow_ips == "10.0.0.1"


def test_edge_settings_come_from_the_environment(tmp_path, monkeypatch) -> None:
    from signal_export.ingest.cli import server_limits
    from signal_export.ingest.config import IngestConfigError, load_ingest_config

    for name in [k for k in os.environ if k.startswith("EXT_SIG_INGEST_")]:
        monkeypatch.delenv(name)
    defaults = server_limits(load_ingest_config(tmp_path / "none.env"))
    assert defaults == ServerLimits() and not defaults.proxy_headers
    env = tmp_path / ".env"
    env.write_text("EXT_SIG_INGEST_HEADER_TIMEOUT_SECONDS=3\nEXT_SIG_INGEST_KEEP_ALIVE_SECONDS=2\n"
                   "EXT_SIG_INGEST_MAX_CONNECTIONS=40\nEXT_SIG_INGEST_BODY_TIMEOUT_SECONDS=9\n"
                   "EXT_SIG_INGEST_BODY_TOKEN_MAX_BYTES=4096\n"
                   "EXT_SIG_INGEST_FORWARDED_ALLOW_IPS=10.0.0.2\n")
    config = load_ingest_config(env)
    assert (config.body_timeout_seconds, config.body_token_max_bytes) == (9, 4096)
    assert server_limits(config) == ServerLimits(header_timeout_s=3, keep_alive_s=2,
                                                 max_connections=40,
                                                 forwarded_allow_ips="10.0.0.2")
    monkeypatch.setenv("EXT_SIG_INGEST_MAX_CONNECTIONS", "0")
    with pytest.raises(IngestConfigError, match="EXT_SIG_INGEST_MAX_CONNECTIONS"):
        load_ingest_config(env)


def test_serve_takes_the_edge_flags() -> None:
    from signal_export.ingest.cli import _parser

    args = _parser().parse_args(["serve", "--max-connections", "5", "--header-timeout", "2",
                                 "--body-timeout", "4", "--keep-alive-timeout", "1",
                                 "--forwarded-allow-ips", "10.0.0.1,10.0.0.2"])
    assert (args.max_connections, args.header_timeout_seconds, args.body_timeout_seconds,
            args.keep_alive_seconds, args.forwarded_allow_ips) == (5, 2.0, 4.0, 1.0,
                                                                   "10.0.0.1,10.0.0.2")
