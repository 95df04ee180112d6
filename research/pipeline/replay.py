"""Replay an export run: re-run its pipeline and say whether the stored signals are identical.

An export run's audit record (``export_runs``) names the pipeline, the SHA of
its config (``extra.config_sha``) and, when the pipeline records it, the
config itself (``extra.config``). :func:`replay_run` takes that config (or a
config file whose SHA must match the recorded one), re-computes the signals
over the config's data range without exporting anything, and compares them
key by key with the documents stored for that strategy, timeframe, universe
and range (up to the run's ``max_ts``) by content hash: *missing* (computed,
not stored), *extra* (stored, not computed), *changed* (same key, other
content). Identical means all three are empty. The code version of the run
and of the replay are reported side by side: a difference explains a
mismatch but is not one. Not for: writing anything (replay is read-only).

    signal-replay RUN_ID [--config FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pymongo.collection import Collection

from research.pipeline import PipelineConfig, load_config, parse_config, run_pipeline
from research.pipeline.run import _config_sha
from signal_export.contract import SIGNAL_CONTENT_FIELDS, ensure_utc, to_pair
from signal_export.errors import BridgeError
from signal_export.exporter import code_version, content_hash
from signal_export.settings import Settings, load_settings
from signal_export.validate import validate_batch

log = logging.getLogger(__name__)
MAX_LISTED = 20


class ReplayError(BridgeError, RuntimeError):
    """The run cannot be replayed (unknown run, no config, config does not match)."""


@dataclass
class ReplayReport:
    """Outcome of one replay; ``identical`` is the verdict."""

    run_id: str
    pipeline: str
    strategy_id: str
    config_sha: str
    recorded_code_version: str | None
    replay_code_version: str
    window: tuple[str, str]
    computed: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["identical"] = self.identical
        for name in ("missing", "extra", "changed"):
            out[f"{name}_count"] = len(out[name])
            out[name] = out[name][:MAX_LISTED]
        return out


def recorded_config(record: Mapping[str, Any], config_file: str | Path | None) -> PipelineConfig:
    """The run's pipeline config: recorded in the audit record, else a file with the same SHA."""
    extra = record.get("extra") or {}
    recorded_sha = extra.get("config_sha")
    if extra.get("config"):
        config = parse_config(extra["config"], source=f"export run {record['run_id']}")
    elif config_file is not None:
        config = load_config(config_file)
    else:
        raise ReplayError(f"export run {record['run_id']}: the audit record holds no pipeline "
                          "config; pass the config file with --config")
    if not recorded_sha:
        raise ReplayError(f"export run {record['run_id']}: no config_sha recorded (not a "
                          "pipeline run?)")
    if _config_sha(config) != recorded_sha:
        raise ReplayError(f"export run {record['run_id']}: config {config_file or '(recorded)'} "
                          f"has SHA {_config_sha(config)}, the run used {recorded_sha}")
    return config


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str, int]:
    ts = doc["ts"]
    if isinstance(ts, datetime) and ts.tzinfo is None:  # pymongo without tz_aware: UTC
        ts = pd.Timestamp(ts, tz="UTC")
    return (doc["strategy_id"], doc["pair"], doc["timeframe"], _ms(ts))


def _label(key: tuple[str, str, str, int]) -> str:
    ts = pd.Timestamp(key[3], unit="ms", tz="UTC").isoformat()
    return f"{key[0]} {key[1]} {key[2]} {ts}"


def _ms(value: Any) -> int:
    return ensure_utc(value, "ts").value // 1_000_000


def _computed_hashes(signals: pd.DataFrame, config: PipelineConfig, settings: Settings,
                     upto: datetime | None) -> dict[tuple, str]:
    batch = validate_batch(signals, align=config.export.align, exchange=settings.exchange,
                           quotes=settings.quotes)
    limit = _ms(upto) if upto is not None else None
    out = {}
    for record in batch.records:
        if limit is not None and _ms(record["ts"]) > limit:
            continue
        out[_key(record)] = content_hash({n: record.get(n) for n in SIGNAL_CONTENT_FIELDS})
    return out


def _stored_hashes(signals: Collection, config: PipelineConfig, settings: Settings,
                   lo: pd.Timestamp, hi: pd.Timestamp) -> dict[tuple, str]:
    pairs = [to_pair(s, settings.quotes) for s in config.universe]
    query = {"strategy_id": config.export.strategy_id, "timeframe": config.timeframe,
             "pair": {"$in": pairs}, "ts": {"$gte": lo.to_pydatetime(),
                                            "$lte": hi.to_pydatetime()}}
    projection = {"_id": 0, "strategy_id": 1, "pair": 1, "timeframe": 1, "ts": 1,
                  "content_hash": 1}
    return {_key(d): d.get("content_hash") for d in signals.find(query, projection)}


def replay_run(run_id: str, signals: Collection, runs: Collection, *,
               config_file: str | Path | None = None, settings: Settings | None = None,
               db: Any = None) -> ReplayReport:
    """Re-compute a recorded run's signals (no export) and compare them with the stored ones.

    ``db``: the pymongo ``Database`` the pipeline reads market data from (as in
    :func:`run_pipeline`; default: from ``settings``).
    """
    settings = settings or load_settings()
    record = runs.find_one({"run_id": run_id})
    if record is None:
        raise ReplayError(f"no export run {run_id!r} in {runs.database.name}.{runs.name}")
    config = recorded_config(record, config_file)
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        result = run_pipeline(config, db=db, settings=settings, export=False,
                              output_dir=Path(tmp))
    upto = record.get("max_ts")
    computed = _computed_hashes(result.signals, config, settings, upto)
    lo = config.start_ts
    hi = config.end_exclusive - pd.Timedelta(milliseconds=1)
    if upto is not None:  # the run stored nothing later than this
        hi = min(hi, ensure_utc(upto, "max_ts"))
    stored = _stored_hashes(signals, config, settings, lo, hi)
    report = ReplayReport(
        run_id=run_id, pipeline=config.name, strategy_id=config.export.strategy_id,
        config_sha=_config_sha(config), recorded_code_version=record.get("code_version"),
        replay_code_version=code_version(), window=(lo.isoformat(), hi.isoformat()),
        computed=len(computed), stored=len(stored))
    report.missing = [_label(k) for k in sorted(computed.keys() - stored.keys())]
    report.extra = [_label(k) for k in sorted(stored.keys() - computed.keys())]
    report.changed = [_label(k) for k in sorted(computed.keys() & stored.keys())
                      if computed[k] != stored[k]]
    log.info("replay of %s: %s (%d computed, %d stored)", run_id,
             "identical" if report.identical else "DIFFERENT", report.computed, report.stored,
             extra={"run_id": run_id, "identical": report.identical})
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: exit 0 identical, 1 different, 2 cannot replay, 3 MongoDB unavailable."""
    from pymongo.errors import PyMongoError

    from signal_export.errors import BridgeError
    from signal_export.logs import configure_logging, redact_uri
    from signal_export.store import connect, runs_collection, signals_collection

    p = argparse.ArgumentParser(prog="signal-replay", description=__doc__.split("\n")[0])
    p.add_argument("run_id")
    p.add_argument("--config", help="pipeline config file (when the run did not record it)")
    p.add_argument("--env-file", default=".env")
    p.add_argument("--json", action="store_true")
    p.add_argument("--log-level")
    args = p.parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings(env_file=args.env_file)
        client = connect(settings.mongo_uri, app_name="signal-replay")
    except (BridgeError, ValueError) as exc:
        print(f"signal-replay: {exc}", file=sys.stderr)
        return 2
    try:
        report = replay_run(args.run_id, signals_collection(client, settings),
                            runs_collection(client, settings), config_file=args.config,
                            settings=settings)
    except ReplayError as exc:
        print(f"signal-replay: {exc}", file=sys.stderr)
        return 2
    except PyMongoError as exc:
        print(f"signal-replay: MongoDB unavailable: {type(exc).__name__}: "
              f"{redact_uri(str(exc))[:300]}", file=sys.stderr)
        return 3
    finally:
        client.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        verdict = "IDENTICAL" if report.identical else "DIFFERENT"
        print(f"replay {report.run_id} ({report.pipeline}, {report.strategy_id}): {verdict}: "
              f"{report.computed} computed, {report.stored} stored, {len(report.missing)} "
              f"missing, {len(report.extra)} extra, {len(report.changed)} changed; code "
              f"{report.recorded_code_version} -> {report.replay_code_version}")
        for name in ("missing", "extra", "changed"):
            for label in getattr(report, name)[:MAX_LISTED]:
                print(f"  {name}: {label}")
    return 0 if report.identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
