"""``signal-export``: export a CSV/Parquet signal file to MongoDB, or show the latest signals.

    signal-export export signals.csv [--strategy-id S] [--timeframe 1h] [--align ceil]
    signal-export latest [--strategy-id S] [--timeframe 1h]

Settings come from the environment / ``.env`` (see ``configs/.env.example``);
``--mongo-uri``/``--db``/``--collection`` override them. Bad rows are reported
by file line (CSV) or row number (Parquet) with the field and the reason; good
rows are stored anyway. Exit status of ``export``: 0 all rows stored or
unchanged, 1 some rows rejected (0 with ``--allow-partial``), 2 unusable input or
configuration (e.g. a malformed MongoDB URI), 3 MongoDB unreachable (after retries)
or refusing the user (wrong password, missing privilege), 130 interrupted by
SIGINT/SIGTERM (the audit record then says ``interrupted`` with the counts of
what was stored).

Not for: scheduling (see the scheduler) or producing signals (research side).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from signal_export.contract import ALIGN_CHOICES, ContractError
from signal_export.errors import ConfigError
from signal_export.exporter import ExportError, export_signals, result_as_dict
from signal_export.logs import configure_logging, redact_uri
from signal_export.settings import Settings, load_settings
from signal_export.store import (
    MongoAccessError,
    connect,
    ensure_indexes,
    history_collection,
    latest_signals,
    runs_collection,
    signals_collection,
)
from signal_export.validate import EXTRA_PREFIX

EXIT_OK, EXIT_REJECTED, EXIT_INPUT, EXIT_MONGO, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def read_signal_file(path: Path) -> tuple[pd.DataFrame, str]:
    """Read a CSV (all cells as text; the contract parses them) or Parquet file.

    The frame is indexed by what a person looks up: the CSV line number
    (header = line 1) or the 1-based Parquet row; returns the label kind too.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
        for col in [c for c in frame.columns if str(c).startswith(EXTRA_PREFIX)]:
            numeric = pd.to_numeric(frame[col], errors="coerce")
            if numeric.notna().sum() == frame[col].notna().sum():
                frame[col] = numeric
        frame.index = pd.RangeIndex(2, len(frame) + 2)
        return frame, "line"
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        frame.index = pd.RangeIndex(1, len(frame) + 1)
        return frame, "row"
    raise ContractError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)", "file")


def _fill_default(frame: pd.DataFrame, column: str, value: str | None) -> None:
    if value is None:
        return
    if column not in frame.columns:
        frame[column] = value
    else:
        frame[column] = frame[column].fillna(value)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.env_file, mongo_uri=args.mongo_uri, db=args.db,
                         collection=args.collection)


def cmd_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        frame, label = read_signal_file(Path(args.file))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    strategy_id = args.strategy_id or (settings.strategy_ids[0]
                                       if len(settings.strategy_ids) == 1 else None)
    _fill_default(frame, "strategy_id", strategy_id)
    _fill_default(frame, "timeframe", args.timeframe)
    try:
        client = connect(settings.mongo_uri)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        ensure_indexes(client, settings)
        result = export_signals(
            frame, signals_collection(client, settings),
            runs_collection=runs_collection(client, settings), align=args.align,
            history_collection=history_collection(client, settings),
            exchange=settings.exchange, quotes=settings.quotes, batch_size=settings.batch_size,
            audit_extra={"file": str(args.file)},
        )
    except ContractError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (ExportError, MongoAccessError) as exc:
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_MONGO
    except KeyboardInterrupt:
        print("interrupted: the export's audit record holds what was stored", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # e.g. index creation when Mongo is unreachable
        print(f"error: {type(exc).__name__}: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_MONGO
    finally:
        signal.signal(signal.SIGTERM, previous)
        client.close()
    for err in result.errors:
        print(f"rejected {label} {err.index}: {err.field}: {err.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result_as_dict(result), default=str, indent=2))
    else:
        print(f"export {result.run_id} -> {settings.db}.{settings.collection}: "
              f"{result.summary()}")
    if result.errors and not args.allow_partial:
        return EXIT_REJECTED
    return EXIT_OK


def _interrupt(signum: int, _frame: Any) -> None:
    """SIGTERM ends an export like Ctrl-C does: batches at the server finish, the record says so."""
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_latest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    strategy_ids = args.strategy_id or list(settings.strategy_ids) or None
    try:
        client = connect(settings.mongo_uri)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    try:
        frame = latest_signals(signals_collection(client, settings), strategy_ids=strategy_ids,
                               timeframe=args.timeframe)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_MONGO
    finally:
        client.close()
    if frame.empty:
        print("no signals")
        return EXIT_OK
    shown = frame.dropna(axis=1, how="all")
    print(shown.to_string(index=False))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signal-export", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mongo-uri", help="overrides EXT_SIG_MONGO_URI")
    common.add_argument("--db", help="overrides EXT_SIG_DB")
    common.add_argument("--collection", help="overrides EXT_SIG_COLLECTION")
    common.add_argument("--env-file", default=".env", help="dotenv file (default: .env)")
    common.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)

    exp = sub.add_parser("export", parents=[common], help="export a CSV/Parquet signal file")
    exp.add_argument("file", help="signals.csv or signals.parquet")
    exp.add_argument("--strategy-id", help="strategy_id for rows that have none")
    exp.add_argument("--timeframe", help="timeframe for rows that have none")
    exp.add_argument("--align", choices=list(ALIGN_CHOICES), default="reject",
                     help="off-grid ts: reject the row (default) or move it up to the next bar "
                          "open, the candle the strategy acts on (never an earlier one)")
    exp.add_argument("--allow-partial", action="store_true",
                     help="exit 0 even if some rows were rejected (they are still reported)")
    exp.add_argument("--json", action="store_true", help="print the result as JSON")
    exp.set_defaults(func=cmd_export)

    lat = sub.add_parser("latest", parents=[common], help="show the latest signal per pair")
    lat.add_argument("--strategy-id", action="append",
                     help="strategy id (repeatable; default EXT_SIG_STRATEGY_ID)")
    lat.add_argument("--timeframe")
    lat.set_defaults(func=cmd_latest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
