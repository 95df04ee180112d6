"""``signal-ingest`` (also ``python -m signal_export.ingest``): run the ingest API, manage tokens.

    signal-ingest serve [--tokens FILE] [--host H] [--port P] [--grace-seconds S]
                        [--forwarded-allow-ips IPS] [--max-connections N] [...]
    signal-ingest new-token --tokens FILE --name NAME --strategy-id ID [--strategy-id ID ...]
    signal-ingest add-producer --tokens FILE --name NAME --strategy-id ID [--token-hash H]
    signal-ingest hash-token            # reads the token from stdin, prints its hash
    signal-ingest openapi               # prints the OpenAPI schema (no MongoDB needed)

Settings: MongoDB from the export settings (``EXT_SIG_MONGO_URI``, ``EXT_SIG_DB``,
...), the API's own from ``EXT_SIG_INGEST_*`` (:mod:`signal_export.ingest.config`);
flags override both.

``new-token`` makes a token, adds its producer (the token's *hash* only) to the token
file (``--tokens``, default ``EXT_SIG_INGEST_TOKENS_FILE``) and prints the token once,
alone, on stdout (give it to the producer). It refuses to run when stdout is the token
file itself (the old ``new-token ... >> tokens.yaml`` habit). ``add-producer`` adds a
producer whose token exists already: its hash (``--token-hash``) or the token on stdin.
Both edit the file safely (:func:`signal_export.ingest.tokens.add_producer_to_file`:
load, check, add, write atomically; new file mode 0600), refuse a name that is there
already unless ``--replace`` (a new token for it), and never put a token on the
command line or into the file. A running server reads the file at start: restart it.
Tokens are read from stdin, never from the command line (shell history).

Exit: 0 ok, 2 bad configuration (or a bad token file / arguments), 3 MongoDB
unreachable at start.

Not for: the routes (:mod:`signal_export.ingest.app`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pymongo.errors import PyMongoError

from signal_export.ingest.app import create_app, openapi_document
from signal_export.ingest.config import IngestConfig, IngestConfigError, load_ingest_config
from signal_export.ingest.server import ServerLimits, serve
from signal_export.ingest.service import SignalSink
from signal_export.ingest.tokens import (
    RateLimit,
    TokenConfigError,
    TokenRegistry,
    add_producer_to_file,
    hash_token,
    load_token_file,
    new_token,
    producer_entry,
)
from signal_export.logs import configure_logging
from signal_export.settings import Settings, load_settings
from signal_export.store import (
    connect,
    describe_start_failure,
    ensure_runs_indexes,
    ensure_signal_indexes,
    history_collection,
    runs_collection,
    signals_collection,
)

EXIT_OK, EXIT_CONFIG, EXIT_MONGO = 0, 2, 3
log = logging.getLogger("signal_export.ingest")


def build_app(settings: Settings, config: IngestConfig, registry: TokenRegistry | None = None,
              ensure_indexes: bool = True):  # noqa: ANN201 (FastAPI)
    """The app wired to MongoDB per ``settings`` and tokens per ``config`` (or ``registry``)."""
    if registry is None:
        if not config.tokens_file:
            raise IngestConfigError("EXT_SIG_INGEST_TOKENS_FILE (or --tokens) is required")
        registry = load_token_file(config.tokens_file)
    client = connect(settings.mongo_uri, app_name="signal-ingest")
    coll = signals_collection(client, settings)
    runs = runs_collection(client, settings)
    history = history_collection(client, settings)
    if ensure_indexes:
        ensure_signal_indexes(coll, settings.signals_ttl_seconds, history=history,
                              history_ttl_seconds=settings.history_ttl_seconds)
        ensure_runs_indexes(runs)
    sink = SignalSink(coll, runs, exchange=settings.exchange, quotes=settings.quotes,
                      grace_seconds=config.grace_seconds, max_items=config.max_items,
                      history_collection=history)
    return create_app(sink, registry, max_body_bytes=config.max_body_bytes,
                      rate_limit=config.default_rate_limit,
                      body_token_max_bytes=config.body_token_max_bytes,
                      body_timeout_s=config.body_timeout_seconds)


def server_limits(config: IngestConfig) -> ServerLimits:
    """The HTTP server's connection limits per ``config``."""
    return ServerLimits(header_timeout_s=config.header_timeout_seconds,
                        keep_alive_s=config.keep_alive_seconds,
                        max_connections=config.max_connections,
                        forwarded_allow_ips=config.forwarded_allow_ips)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signal-ingest", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("serve", help="run the HTTP API (default)")
    run.add_argument("--env-file", default=".env")
    run.add_argument("--tokens", help="producer token file (.yaml/.json)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--grace-seconds", type=float)
    run.add_argument("--max-body-bytes", type=int)
    run.add_argument("--max-connections", type=int,
                     help="connections/requests at once; more get 503 (default 100)")
    run.add_argument("--header-timeout", type=float, dest="header_timeout_seconds",
                     help="seconds for a request head to arrive (default 10)")
    run.add_argument("--body-timeout", type=float, dest="body_timeout_seconds",
                     help="seconds for a request body to arrive; 408 after (default 30)")
    run.add_argument("--keep-alive-timeout", type=float, dest="keep_alive_seconds",
                     help="idle keep-alive connections closed after (default 5)")
    run.add_argument("--forwarded-allow-ips",
                     help="comma-separated proxy addresses whose X-Forwarded-For is trusted "
                          "(default: none, the peer address is the client)")
    run.add_argument("--mongo-uri")
    run.add_argument("--db")
    run.add_argument("--log-level", default="info")
    for name, text in (("new-token", "make a token, add its hash to the token file, print "
                                     "the token once"),
                       ("add-producer", "add a producer with an existing token (hash or "
                                        "token on stdin) to the token file")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--tokens", help="token file (.yaml/.json; created if missing); "
                                          "default EXT_SIG_INGEST_TOKENS_FILE")
        cmd.add_argument("--env-file", default=".env")
        cmd.add_argument("--name", required=True)
        cmd.add_argument("--strategy-id", action="append", required=True, dest="strategy_ids")
        cmd.add_argument("--rate-per-second", type=float,
                         help="own rate limit (default: the server's)")
        cmd.add_argument("--burst", type=int, help="own burst (with --rate-per-second)")
        cmd.add_argument("--replace", action="store_true",
                         help="replace the producer of that name (a new token for it)")
        if name == "add-producer":
            cmd.add_argument("--token-hash", help="sha256:<hex> (default: hash the token "
                                                  "read from stdin)")
    sub.add_parser("hash-token", help="hash a token read from stdin")
    sub.add_parser("openapi", help="print the OpenAPI schema as JSON")
    return parser


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        settings = load_settings(args.env_file, mongo_uri=args.mongo_uri, db=args.db)
        config = load_ingest_config(args.env_file, tokens_file=args.tokens, host=args.host,
                                    port=args.port, grace_seconds=args.grace_seconds,
                                    max_body_bytes=args.max_body_bytes,
                                    max_connections=args.max_connections,
                                    header_timeout_seconds=args.header_timeout_seconds,
                                    body_timeout_seconds=args.body_timeout_seconds,
                                    keep_alive_seconds=args.keep_alive_seconds,
                                    forwarded_allow_ips=args.forwarded_allow_ips)
        app = build_app(settings, config)
    except (IngestConfigError, TokenConfigError, ValueError) as exc:
        log.error("bad configuration: %s", exc)
        return EXIT_CONFIG
    except PyMongoError as exc:
        log.error("%s", describe_start_failure(exc, settings.mongo_uri,
                                               "create the ingest API's indexes"))
        return EXIT_MONGO
    limits = server_limits(config)
    log.info("signal ingest API on http://%s:%d (%d producers, grace %.1f s, db %s, "
             "max %d connections, proxy headers %s)", config.host, config.port,
             len(app.state.registry), config.grace_seconds, settings.db,
             limits.max_connections,
             f"from {limits.forwarded_allow_ips}" if limits.proxy_headers else "ignored")
    serve(app, config.host, config.port, log_level=args.log_level.lower(), limits=limits)
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"signal-ingest: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _stdout_is(path: Path) -> bool:
    """Whether stdout is the file at ``path`` (``new-token ... >> tokens.yaml``)."""
    try:
        out, target = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (out.st_dev, out.st_ino) == (target.st_dev, target.st_ino)


def _add_producer(args: argparse.Namespace) -> int:
    """``new-token`` and ``add-producer``: add an entry (hash only) to the token file."""
    tokens_file = args.tokens
    if not tokens_file:
        try:
            tokens_file = load_ingest_config(args.env_file).tokens_file
        except IngestConfigError as exc:
            return _fail(f"bad configuration: {exc}")
    if not tokens_file:
        return _fail(f"{args.command}: the token file is needed: --tokens FILE (or "
                     "EXT_SIG_INGEST_TOKENS_FILE); it gets the token's hash only")
    path = Path(tokens_file)
    if _stdout_is(path):
        return _fail(f"{args.command}: stdout is the token file {path}: the token would be "
                     "written into it. Run without redirecting into it: the producer is added "
                     "to the file (hash only) and the token printed on stdout")
    rate_limit = None
    if args.rate_per_second is not None or args.burst is not None:
        if args.rate_per_second is None or args.rate_per_second <= 0:
            return _fail("--rate-per-second must be > 0 (and is needed with --burst)")
        rate_limit = RateLimit(args.rate_per_second,
                               args.burst if args.burst is not None
                               else max(1, round(args.rate_per_second)))
        if rate_limit.burst < 1:
            return _fail("--burst must be >= 1")
    token: str | None = None
    if args.command == "new-token":
        token = new_token()
        token_hash = hash_token(token)
    elif args.token_hash:
        token_hash = args.token_hash
    else:
        presented = sys.stdin.readline().strip()
        if not presented:
            return _fail("add-producer: no --token-hash and no token on stdin")
        token_hash = hash_token(presented)
    try:
        entry = producer_entry(args.name, token_hash, args.strategy_ids, rate_limit)
        written, replaced = add_producer_to_file(path, entry, replace=args.replace)
    except TokenConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"token file {path}: {exc.strerror or exc}")
    print(f"{'replaced' if replaced else 'added'} producer {args.name!r} "
          f"(strategy_ids {', '.join(entry['strategy_ids'])}) in {written}; restart "
          "signal-ingest serve to load it", file=sys.stderr)
    if token is not None:
        print("the token (shown once; give it to the producer, it is not stored):",
              file=sys.stderr)
        print(token, flush=True)
    return EXIT_OK


COMMANDS = ("serve", "new-token", "add-producer", "hash-token", "openapi")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    command = args.command
    if command == "serve":
        return _serve(args)
    if command in ("new-token", "add-producer"):
        return _add_producer(args)
    if command == "hash-token":
        token = sys.stdin.readline().strip()
        if not token:
            print("no token on stdin", file=sys.stderr)
            return EXIT_CONFIG
        print(hash_token(token))
        return EXIT_OK
    print(json.dumps(openapi_document(), indent=2))
    return EXIT_OK
