"""``signal-ingest`` (also ``python -m signal_export.ingest``): run the ingest API, manage tokens.

    signal-ingest serve [--tokens FILE] [--host H] [--port P] [--grace-seconds S]
    signal-ingest new-token --name NAME --strategy-id ID [--strategy-id ID ...]
    signal-ingest hash-token            # reads the token from stdin, prints its hash
    signal-ingest openapi               # prints the OpenAPI schema (no MongoDB needed)

Settings: MongoDB from the export settings (``EXT_SIG_MONGO_URI``, ``EXT_SIG_DB``,
...), the API's own from ``EXT_SIG_INGEST_*`` (:mod:`signal_export.ingest.config`);
flags override both. ``new-token`` prints the token once (give it to the
producer) and the entry for the token file, which holds only the hash. Tokens
are read from stdin, never from the command line (shell history). Exit: 0 ok,
2 bad configuration, 3 MongoDB unreachable at start.

Not for: the routes (:mod:`signal_export.ingest.app`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import yaml
from pymongo.errors import PyMongoError

from signal_export.ingest.app import create_app, openapi_document
from signal_export.ingest.config import IngestConfig, IngestConfigError, load_ingest_config
from signal_export.ingest.server import serve
from signal_export.ingest.service import SignalSink
from signal_export.ingest.tokens import (
    TokenConfigError,
    TokenRegistry,
    hash_token,
    load_token_file,
    new_token,
)
from signal_export.logs import configure_logging, redact_uri
from signal_export.settings import Settings, load_settings
from signal_export.store import (
    connect,
    ensure_runs_indexes,
    ensure_signal_indexes,
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
    if ensure_indexes:
        ensure_signal_indexes(coll, settings.signals_ttl_seconds)
        ensure_runs_indexes(runs)
    sink = SignalSink(coll, runs, exchange=settings.exchange, quotes=settings.quotes,
                      grace_seconds=config.grace_seconds, max_items=config.max_items)
    return create_app(sink, registry, max_body_bytes=config.max_body_bytes,
                      rate_limit=config.default_rate_limit)


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
    run.add_argument("--mongo-uri")
    run.add_argument("--db")
    run.add_argument("--log-level", default="info")
    new = sub.add_parser("new-token", help="make a token and its token-file entry")
    new.add_argument("--name", required=True)
    new.add_argument("--strategy-id", action="append", required=True, dest="strategy_ids")
    sub.add_parser("hash-token", help="hash a token read from stdin")
    sub.add_parser("openapi", help="print the OpenAPI schema as JSON")
    return parser


def _serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        settings = load_settings(args.env_file, mongo_uri=args.mongo_uri, db=args.db)
        config = load_ingest_config(args.env_file, tokens_file=args.tokens, host=args.host,
                                    port=args.port, grace_seconds=args.grace_seconds,
                                    max_body_bytes=args.max_body_bytes)
        app = build_app(settings, config)
    except (IngestConfigError, TokenConfigError, ValueError) as exc:
        log.error("bad configuration: %s", exc)
        return EXIT_CONFIG
    except PyMongoError as exc:
        log.error("MongoDB %s unreachable at start: %s", redact_uri(settings.mongo_uri),
                  type(exc).__name__)
        return EXIT_MONGO
    log.info("signal ingest API on http://%s:%d (%d producers, grace %.1f s, db %s)",
             config.host, config.port, len(app.state.registry), config.grace_seconds,
             settings.db)
    serve(app, config.host, config.port, log_level=args.log_level.lower())
    return EXIT_OK


COMMANDS = ("serve", "new-token", "hash-token", "openapi")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    command = args.command
    if command == "serve":
        return _serve(args)
    if command == "new-token":
        token = new_token()
        entry = {"producers": [{"name": args.name, "token_hash": hash_token(token),
                                "strategy_ids": args.strategy_ids}]}
        print(f"# token for {args.name} (shown once; give it to the producer):\n# {token}")
        print(yaml.safe_dump(entry, sort_keys=False), end="")
        return EXIT_OK
    if command == "hash-token":
        token = sys.stdin.readline().strip()
        if not token:
            print("no token on stdin", file=sys.stderr)
            return EXIT_CONFIG
        print(hash_token(token))
        return EXIT_OK
    print(json.dumps(openapi_document(), indent=2))
    return EXIT_OK
