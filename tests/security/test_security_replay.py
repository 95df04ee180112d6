"""Audit and replay: a recorded export run re-runs to the same signals, and tampering shows.

A real pipeline run (synthetic data, 1d, three pairs) exports into the test
database; its audit record must carry the audit fields, and
:func:`replay_run` must call the stored signals identical, then name the
changed/missing/extra keys after the stored documents are altered.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml

from research.pipeline import config_as_dict, parse_config, run_pipeline
from research.pipeline.replay import ReplayError, main, replay_run
from signal_export.settings import load_settings

CONFIG = {
    "name": "replay_t",
    "universe": ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
    "timeframe": "1d",
    "start": "2024-01-01",
    "end": "2024-06-30",
    "data": {"kind": "synthetic", "seed": 5},
    "factors": ["rsi", {"name": "sma", "params": {"period": 20}}],
    "generator": {"type": "threshold",
                  "params": {"enter": "rsi_14 > 55 and close > sma_20", "exit": "rsi_14 < 45"}},
    "backtest": {"fee": 0.001, "slippage_bps": 5, "initial_capital": 10_000},
    "export": {"strategy_id": "replay_t", "version": 1},
    "report": {"output_dir": "unused"},
}


@pytest.fixture
def exported(mongo_db, tmp_path):
    config = parse_config(CONFIG)
    settings = load_settings(env_file=None, db=mongo_db.name, market_db=mongo_db.name)
    result = run_pipeline(config, db=mongo_db, settings=settings, export=True, dry_run=False,
                          output_dir=tmp_path / "report")
    assert result.export is not None and result.export.inserted > 10
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return result.export.run_id, path, settings


def _replay(mongo_db, run_id, **kwargs):
    return replay_run(run_id, mongo_db["crypto_signals"], mongo_db["export_runs"], db=mongo_db,
                      **kwargs)


def test_export_run_and_signals_carry_the_audit_fields(mongo_db, exported):
    run_id, _, _ = exported
    record = mongo_db["export_runs"].find_one({"run_id": run_id})
    for name in ("strategy_ids", "versions", "code_version", "exporter", "started_at",
                 "finished_at", "counts"):
        assert record.get(name), name
    assert "@" in record["exporter"] and record["extra"]["config_sha"]
    doc = mongo_db["crypto_signals"].find_one({"run_id": run_id})
    for name in ("strategy_id", "version", "run_id", "created_run_id", "created_at",
                 "updated_at", "content_hash"):
        assert doc.get(name) is not None, name


def test_replay_of_an_untouched_run_is_identical(mongo_db, exported, tmp_path):
    run_id, path, settings = exported
    report = _replay(mongo_db, run_id, config_file=path, settings=settings)
    assert report.identical, report.as_dict()
    assert report.computed == report.stored > 10
    assert report.recorded_code_version and report.replay_code_version


def test_replay_names_changed_missing_and_extra_signals(mongo_db, exported):
    run_id, path, settings = exported
    coll = mongo_db["crypto_signals"]
    first, second = list(coll.find({"run_id": run_id}).sort("ts", 1).limit(2))
    coll.update_one({"_id": first["_id"]}, {"$set": {"action": "exit_long",
                                                     "content_hash": "tampered"}})
    coll.delete_one({"_id": second["_id"]})
    used = {d["ts"] for d in coll.find({"strategy_id": "replay_t", "pair": "ETH/USDT"})}
    free = next(ts for ts in (second["ts"] + timedelta(days=n) for n in range(1, 150))
                if ts not in used)  # a key the pipeline did not produce
    coll.insert_one({**{k: v for k, v in second.items() if k != "_id"}, "pair": "ETH/USDT",
                     "ts": free, "content_hash": "forged"})
    report = _replay(mongo_db, run_id, config_file=path, settings=settings)
    assert not report.identical
    assert len(report.changed) == 1 and first["pair"] in report.changed[0]
    assert len(report.missing) == 1 and second["pair"] in report.missing[0]
    assert report.extra == [f"replay_t ETH/USDT 1d {free.isoformat()}"]


def test_replay_uses_the_config_recorded_in_the_audit_record(mongo_db, exported):
    run_id, _, settings = exported
    mongo_db["export_runs"].update_one(
        {"run_id": run_id}, {"$set": {"extra.config": config_as_dict(parse_config(CONFIG))}})
    assert _replay(mongo_db, run_id, settings=settings).identical


def test_replay_refuses_a_config_that_is_not_the_recorded_one(mongo_db, exported, tmp_path):
    run_id, _, settings = exported
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**CONFIG, "data": {"kind": "synthetic", "seed": 6}}))
    with pytest.raises(ReplayError, match="has SHA .* the run used"):
        _replay(mongo_db, run_id, config_file=other, settings=settings)
    with pytest.raises(ReplayError, match="no pipeline config; pass the config file"):
        _replay(mongo_db, run_id, settings=settings)
    with pytest.raises(ReplayError, match="no export run 'nope'"):
        _replay(mongo_db, "nope", settings=settings)


def test_replay_cli_reports_identical_as_json(mongo_db, exported, mongo_uri, monkeypatch,
                                              capsys):
    run_id, path, _ = exported
    monkeypatch.setenv("EXT_SIG_MONGO_URI", mongo_uri)
    monkeypatch.setenv("EXT_SIG_DB", mongo_db.name)
    monkeypatch.setenv("MARKET_DB", mongo_db.name)
    code = main([run_id, "--config", str(path), "--json", "--env-file", "missing.env"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out[out.index("{"):])["identical"] is True
