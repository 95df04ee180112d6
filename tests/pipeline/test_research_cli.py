"""The ``research`` CLI: each command against the local MongoDB server, with exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_data import config_dict

from research.cli import EXIT_INPUT, EXIT_MONGO, EXIT_OK, main
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.factors import compute_factors
from signal_export.contract import MARKET_1D_COLLECTION, SIGNALS_COLLECTION

ROOT = Path(__file__).resolve().parents[2]
RESEARCH = Path(sys.executable).with_name("research")


def _mongo_args(mongo_uri: str, db) -> list[str]:
    return ["--mongo-uri", mongo_uri, "--db", db.name, "--market-db", db.name,
            "--env-file", "/nonexistent/.env", "--quiet"]


def _write_config(tmp_path: Path, **overrides) -> Path:
    data = config_dict(**overrides)
    data["report"] = {"output_dir": str(tmp_path / "report")}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_pipeline_command_exports_then_rerun_changes_nothing(mongo_uri, mongo_db, tmp_path,
                                                             capsys):
    # --db on the command line beats the file's export.db
    config = _write_config(tmp_path, export={"strategy_id": "pipe_test", "db": "not_this_db"})
    assert main(["pipeline", str(config), *_mongo_args(mongo_uri, mongo_db)]) == EXIT_OK
    out = capsys.readouterr().out
    stored = mongo_db[SIGNALS_COLLECTION].count_documents({"strategy_id": "pipe_test"})
    assert stored > 0
    assert f"inserted={stored} updated=0" in out
    assert f"report: {tmp_path / 'report' / 'report.html'}" in out
    assert (tmp_path / "report" / "report.html").is_file()

    assert main(["pipeline", str(config), *_mongo_args(mongo_uri, mongo_db)]) == EXIT_OK
    assert f"inserted=0 updated=0 unchanged={stored}" in capsys.readouterr().out
    assert "not_this_db" not in mongo_db.client.list_database_names()


def test_pipeline_command_rejects_a_bad_config_with_exit_2(tmp_path, capsys):
    config = _write_config(tmp_path, backtest={"fees": 0.1})
    assert main(["pipeline", str(config), "--quiet"]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "backtest.fees: unknown key" in err and str(config) in err


def test_pipeline_command_reports_an_unreachable_mongo_with_exit_3(tmp_path, capsys):
    config = _write_config(tmp_path)
    code = main(["pipeline", str(config), "--quiet", "--env-file", "/nonexistent/.env",
                 "--mongo-uri", "mongodb://u:secret@127.0.0.1:1/?serverSelectionTimeoutMS=200"])
    assert code == EXIT_MONGO
    err = capsys.readouterr().err
    assert "error:" in err and "secret" not in err


def test_factors_command_writes_the_factor_frame(tmp_path, capsys):
    out = tmp_path / "f.parquet"
    code = main(["factors", "--symbols", "BTC/USDT,BINANCE:ETHUSDT", "--start", "2024-01-01",
                 "--end", "2024-03-31", "--timeframe", "1d", "--factors", "rsi,macd",
                 "--synthetic-seed", "3", "--out", str(out), "--quiet"])
    assert code == EXIT_OK
    frame = pd.read_parquet(out)
    market = generate_ohlcv(SyntheticMarket(seed=3, symbols=("BTC/USDT", "ETH/USDT")),
                            pd.Timestamp("2024-01-01", tz="UTC"),
                            pd.Timestamp("2024-04-01", tz="UTC"), "1d")
    direct = compute_factors(market, ["rsi", "macd"])
    assert list(frame.columns) == list(direct.columns)
    assert len(frame) == 2 * 91
    assert np.array_equal(frame["rsi_14"].to_numpy(), direct["rsi_14"].to_numpy(),
                          equal_nan=True)
    assert "182 rows" in capsys.readouterr().out


def test_factor_parameters_on_the_command_line(tmp_path):
    out = tmp_path / "f.parquet"
    code = main(["factors", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                 "2024-03-31", "--factors", "sma:period=5,bbands:period=10:nbdev=1.5",
                 "--synthetic-seed", "3", "--out", str(out), "--quiet"])
    assert code == EXIT_OK
    assert list(pd.read_parquet(out).columns) == [
        "datetime", "symbol", "sma_5", "sma_dist_5", "bb_pctb_10", "bb_width_10"]


def test_factors_command_names_an_unknown_factor(tmp_path, capsys):
    code = main(["factors", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                 "2024-01-31", "--factors", "rsi,nope", "--synthetic-seed", "3",
                 "--out", str(tmp_path / "f.parquet"), "--quiet"])
    assert code == EXIT_INPUT
    assert "unknown factor 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "f.parquet").exists()


def test_import_synthetic_then_factors_and_pipeline_read_mongo(mongo_uri, mongo_db, tmp_path,
                                                               capsys):
    args = _mongo_args(mongo_uri, mongo_db)
    code = main(["import-synthetic", "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT", "--timeframe",
                 "1d", "--start", "2024-01-01", "--end", "2024-12-31", "--seed", "11", *args])
    assert code == EXIT_OK
    assert "inserted=1098" in capsys.readouterr().out
    assert mongo_db[MARKET_1D_COLLECTION].count_documents({}) == 3 * 366
    assert main(["import-synthetic", "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT", "--timeframe",
                 "1d", "--start", "2024-01-01", "--end", "2024-12-31", "--seed", "11",
                 *args]) == EXIT_OK
    assert "inserted=0 updated=0 unchanged=1098" in capsys.readouterr().out

    out = tmp_path / "f.parquet"
    assert main(["factors", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                 "2024-12-31", "--factors", "rsi", "--out", str(out), *args]) == EXIT_OK
    synthetic = tmp_path / "s.parquet"
    assert main(["factors", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                 "2024-12-31", "--factors", "rsi", "--synthetic-seed", "11", "--out",
                 str(synthetic), "--quiet"]) == EXIT_OK
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(synthetic))

    # the same pipeline on stored data exports the same signals as on generated data
    from_mongo = _write_config(tmp_path, data={"kind": "mongo"})
    assert main(["pipeline", str(from_mongo), "--no-export", "--json", *args]) == EXIT_OK
    assert '"export": null' in capsys.readouterr().out
    mongo_signals = pd.read_parquet(tmp_path / "report" / "signals.parquet")
    generated = _write_config(tmp_path)
    assert main(["pipeline", str(generated), "--no-export", "--quiet"]) == EXIT_OK
    pd.testing.assert_frame_equal(mongo_signals,
                                  pd.read_parquet(tmp_path / "report" / "signals.parquet"))


def test_import_file_stores_the_candles(mongo_uri, mongo_db, tmp_path, capsys):
    csv = tmp_path / "btc.csv"
    csv.write_text("Open time,open,high,low,close,volume\n"
                   "2024-01-01,100,110,90,105,5\n2024-01-02,105,112,101,111,7\n")
    code = main(["import-file", str(csv), "--timeframe", "1d", "--symbol", "BTC/USDT",
                 "--map", "Open time=datetime", *_mongo_args(mongo_uri, mongo_db)])
    assert code == EXIT_OK
    assert "inserted=2" in capsys.readouterr().out
    doc = mongo_db[MARKET_1D_COLLECTION].find_one({"date": "20240102"}, {"_id": 0})
    assert doc == {"symbol": "BINANCE:BTCUSDT", "date": "20240102", "open": 105.0,
                   "high": 112.0, "low": 101.0, "close": 111.0, "volume": 7.0}


def test_import_file_names_a_missing_column(mongo_uri, mongo_db, tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("datetime,open,high,low,close\n2024-01-01,1,1,1,1\n")
    code = main(["import-file", str(csv), "--timeframe", "1d", "--symbol", "BTC/USDT",
                 *_mongo_args(mongo_uri, mongo_db)])
    assert code == EXIT_INPUT
    assert "missing column(s) ['volume']" in capsys.readouterr().err


def test_signals_command_writes_parquet_and_exports(mongo_uri, mongo_db, tmp_path, capsys):
    config = _write_config(tmp_path)
    out = tmp_path / "signals.parquet"
    args = _mongo_args(mongo_uri, mongo_db)
    assert main(["signals", "--config", str(config), "--out", str(out), *args]) == EXIT_OK
    frame = pd.read_parquet(out)
    assert len(frame) > 0 and set(frame["strategy_id"]) == {"pipe_test"}
    assert mongo_db[SIGNALS_COLLECTION].count_documents({}) == 0  # no --export: nothing stored
    assert main(["signals", "--config", str(config), "--out", str(out), "--export",
                 *args]) == EXIT_OK
    assert f"inserted={len(frame)}" in capsys.readouterr().out
    assert mongo_db[SIGNALS_COLLECTION].count_documents({}) == len(frame)


def test_console_script_runs_a_dry_run(tmp_path):
    if not RESEARCH.exists():
        pytest.fail(f"console script {RESEARCH} is not installed (pip install -e .)")
    config = _write_config(tmp_path)
    proc = subprocess.run([str(RESEARCH), "pipeline", str(config), "--dry-run", "--quiet",
                           "--env-file", "/nonexistent/.env"], capture_output=True, text=True,
                          timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "nothing written (dry run)" in proc.stdout and "rejected=0" in proc.stdout


def test_pipeline_latest_exports_the_newest_bar(mongo_uri, mongo_db, tmp_path, capsys):
    import json

    config = _write_config(tmp_path, start="2022-06-01", generator={
        "type": "rank", "params": {"factor": "rsi_14", "top_n": 1}})
    args = ["pipeline", str(config), "--latest", "--now", "2024-12-31T00:00:05Z", "--json",
            *_mongo_args(mongo_uri, mongo_db)]
    assert main(args) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["bar"] == "2024-12-30T00:00:00+00:00"
    assert summary["export"]["inserted"] == summary["signals"] == 3
    stored = mongo_db[SIGNALS_COLLECTION].distinct("ts")
    assert [t.isoformat() for t in stored] == ["2024-12-30T00:00:00+00:00"]
    assert not (tmp_path / "report").exists()  # the newest-bar run writes no report
