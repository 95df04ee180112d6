"""Command line of the local MongoDB DEVELOPMENT server (``local-mongod``).

DEVELOPMENT SERVER, NOT A PRODUCTION DATABASE. Starts the server, prints its
URI (``mongodb://HOST:PORT/``) as the first line on stdout, logs to a file or
stderr, and stops cleanly on SIGTERM/SIGINT. With ``--auth`` clients must
authenticate (SCRAM-SHA-256); the bootstrap admin comes from
``--admin-user``/``--admin-password`` or the environment variables
``LOCAL_MONGOD_ADMIN_USER``/``LOCAL_MONGOD_ADMIN_PASSWORD``. Passwords are never
printed or logged.

Start-up rules: every start logs a one-line WARNING banner saying this is a
development server; a non-loopback ``--host`` (e.g. ``0.0.0.0``) is refused
(exit code 2, reason on stderr) unless the server runs with ``--auth`` and an
admin user exists (``--admin-user`` or one already stored in the data dir).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

DESCRIPTION = (
    "Local MongoDB wire-protocol DEVELOPMENT SERVER, NOT A PRODUCTION DATABASE. "
    "For the demo, tests and local runs where no genuine mongod is available; "
    "use real MongoDB in production."
)
BANNER = ("local-mongod is a DEVELOPMENT server, NOT for production: partial mongod "
          "semantics and security model, no TLS; use real MongoDB in production")
EXIT_REFUSED = 2


def loopback_only(host: str) -> bool:
    """True when binding ``host`` listens on loopback addresses only (127.0.0.0/8, ::1).

    Wildcards (``0.0.0.0``, ``::``, empty) and names that resolve to any other address, or
    do not resolve, count as non-loopback.
    """
    if not host:
        return False
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    if not addresses:
        return False
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_loopback:
            return False
    return True


def bind_refusal(host: str, port: int, auth: bool, has_admin: bool) -> str | None:
    """Why listening on ``host`` is refused, or None when it is allowed.

    A non-loopback address needs ``--auth`` and an admin user: otherwise anyone who can
    reach the port could read, change or delete every database (or become root through
    the localhost exception).
    """
    if loopback_only(host):
        return None
    if not auth:
        why = "authentication is off (no --auth)"
    elif not has_admin:
        why = "no admin user exists (give --admin-user, password in LOCAL_MONGOD_ADMIN_PASSWORD)"
    else:
        return None
    return (f"refusing to listen on {host}:{port}: it is not a loopback address and {why}. "
            "Anyone who can reach it could read, change or delete every database of this "
            "DEVELOPMENT server. Listen on 127.0.0.1 (the default), or start it with --auth "
            "and an admin user.")


def _stored_admin(data_dir: Path) -> bool:
    """True when the data dir already holds a user that administers users on admin."""
    if not data_dir.is_dir() or not any(data_dir.iterdir()):
        return False
    from devservers.mongo.auth import AuthManager
    from devservers.mongo.storage import Storage

    storage = Storage(data_dir)
    try:
        return AuthManager(storage, enabled=True).has_admin_user()
    finally:
        storage.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="local-mongod", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=27017,
                        help="TCP port (default 27017; 0 = pick a free port)")
    parser.add_argument("--data-dir", type=Path, default=Path(".local-mongod"),
                        help="directory of the SQLite data file (default ./.local-mongod)")
    parser.add_argument("--log-file", type=Path, default=None,
                        help="write the server log here (default: stderr)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--auth", action="store_true",
                        help="require SCRAM-SHA-256 authentication and enforce roles")
    parser.add_argument("--admin-user", default=os.environ.get("LOCAL_MONGOD_ADMIN_USER"),
                        help="bootstrap root user on 'admin' (env LOCAL_MONGOD_ADMIN_USER)")
    parser.add_argument("--admin-password",
                        default=os.environ.get("LOCAL_MONGOD_ADMIN_PASSWORD"),
                        help="its password (env LOCAL_MONGOD_ADMIN_PASSWORD; never printed)")
    parser.add_argument("--ttl-interval", type=float, default=60.0,
                        help="seconds between TTL sweeps (default 60, as mongod)")
    parser.add_argument("--max-connections", type=int, default=1000,
                        help="open connections at most; more are closed at once (default 1000)")
    parser.add_argument("--idle-timeout", type=float, default=1800.0,
                        help="seconds a connection may idle between messages (default 1800)")
    parser.add_argument("--message-timeout", type=float, default=30.0,
                        help="seconds without data in the middle of a message, or to send a "
                        "reply, before the client is dropped (default 30)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("ttl_interval", "max_connections", "idle_timeout", "message_timeout"):
        if getattr(args, flag) <= 0:
            print(f"--{flag.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    if bool(args.admin_user) != bool(args.admin_password):
        print("--admin-user and --admin-password go together", file=sys.stderr)
        return 2
    handler: logging.Handler = (
        logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("devservers.mongo")
    root.addHandler(handler)
    root.setLevel(args.log_level.upper())
    root.warning(BANNER)
    if not loopback_only(args.host):
        try:
            has_admin = bool(args.admin_user) or (args.auth and _stored_admin(args.data_dir))
        except (RuntimeError, OSError) as exc:
            root.error("cannot start: %s", exc)
            print(f"local-mongod: cannot start: {exc}", file=sys.stderr)
            return 1
        refusal = bind_refusal(args.host, args.port, args.auth, has_admin)
        if refusal:
            root.error("%s", refusal)
            print(f"local-mongod: {refusal}", file=sys.stderr)
            return EXIT_REFUSED

    from devservers.mongo.server import LocalMongoServer

    try:
        server = LocalMongoServer(args.data_dir, host=args.host, port=args.port,
                                  auth=args.auth, ttl_interval=args.ttl_interval,
                                  max_connections=args.max_connections,
                                  idle_timeout=args.idle_timeout,
                                  message_timeout=args.message_timeout)
        if args.admin_user:
            server.auth.ensure_admin(args.admin_user, args.admin_password)
        server.start()
    except (RuntimeError, OSError) as exc:
        root.error("cannot start: %s", exc)
        print(f"local-mongod: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(server.uri, flush=True)
    root.info("local-mongod (DEVELOPMENT SERVER) listening on %s data_dir=%s auth=%s",
              server.uri, args.data_dir, args.auth)
    while not stop.wait(0.1):
        pass
    root.info("stopping")
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
