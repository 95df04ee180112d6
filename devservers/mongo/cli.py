"""Command line of the local MongoDB DEVELOPMENT server (``local-mongod``).

DEVELOPMENT SERVER, NOT A PRODUCTION DATABASE. Starts the server, prints its
URI (``mongodb://HOST:PORT/``) as the first line on stdout, logs to a file or
stderr, and stops cleanly on SIGTERM/SIGINT. With ``--auth`` clients must
authenticate (SCRAM-SHA-256); the bootstrap admin comes from
``--admin-user``/``--admin-password`` or the environment variables
``LOCAL_MONGOD_ADMIN_USER``/``LOCAL_MONGOD_ADMIN_PASSWORD``. Passwords are never
printed or logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

DESCRIPTION = (
    "Local MongoDB wire-protocol DEVELOPMENT SERVER, NOT A PRODUCTION DATABASE. "
    "For the demo, tests and local runs where no genuine mongod is available; "
    "use real MongoDB in production."
)


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ttl_interval <= 0:
        print("--ttl-interval must be > 0", file=sys.stderr)
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

    from devservers.mongo.server import LocalMongoServer

    try:
        server = LocalMongoServer(args.data_dir, host=args.host, port=args.port,
                                  auth=args.auth, ttl_interval=args.ttl_interval)
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
    while not stop.wait(0.5):
        pass
    root.info("stopping")
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
