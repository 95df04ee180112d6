"""``signal-export``: files in, bad rows reported by line and field, good rows stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from signal_export.cli import main

ROOT = Path(__file__).resolve().parents[2]

CSV = """ts,timeframe,pair,action,score,weight,extra.stop_loss
2026-03-02T00:00:00Z,1h,BTC/USDT,enter_long,0.9,0.5,61000.5
2026-03-02T01:00:00Z,1h,ETH/USDT,exit_long,,0.3,
2026-03-02T02:00:00,1h,ETH/USDT,enter_long,,,
2026-03-02T03:00:00+00:00,1h,SOL/USDT,,0.2,,
2026-03-02T04:00:00Z,1h,BTC/USDT,hold,,,
"""


def cli(mongo_uri, db, *args):
    return main([*args, "--mongo-uri", mongo_uri, "--db", db.name, "--env-file", "/nonexistent"])


def test_csv_export_reports_bad_lines_and_stores_good_rows(mongo_uri, mongo_db, tmp_path, capsys):
    path = tmp_path / "signals.csv"
    path.write_text(CSV)
    code = cli(mongo_uri, mongo_db, "export", str(path), "--strategy-id", "csv_v1")
    out, err = capsys.readouterr()
    assert code == 1
    assert "rejected line 3: weight: 0.3 > 0 conflicts with action exit_long" in err
    assert "rejected line 4: ts:" in err and "no UTC offset" in err
    assert "rejected line 6: action:" in err
    assert "inserted=2" in out and "rejected=3" in out
    stored = {d["pair"]: d for d in mongo_db["crypto_signals"].find()}
    assert set(stored) == {"BTC/USDT", "SOL/USDT"}
    assert stored["BTC/USDT"]["extra"] == {"stop_loss": 61000.5}
    assert stored["BTC/USDT"]["strategy_id"] == "csv_v1"
    assert mongo_db["export_runs"].count_documents({}) == 1


def test_allow_partial_exits_zero_but_still_reports(mongo_uri, mongo_db, tmp_path, capsys):
    path = tmp_path / "signals.csv"
    path.write_text(CSV)
    code = cli(mongo_uri, mongo_db, "export", str(path), "--strategy-id", "csv_v1",
               "--allow-partial")
    assert code == 0 and "rejected line 6" in capsys.readouterr().err


def test_parquet_export_reports_rows_and_reexport_is_a_no_op(mongo_uri, mongo_db, tmp_path,
                                                             capsys):
    frame = pd.DataFrame({
        "ts": pd.to_datetime(["2026-03-02", "2026-03-03", "2026-03-04"], utc=True),
        "symbol": ["BINANCE:BTCUSDT", "BINANCE:ETHBTC", "BINANCE:ETHBTC"],
        "strategy_id": "pq_v1", "weight": [0.5, float("inf"), 0.25],
    })
    path = tmp_path / "signals.parquet"
    frame.to_parquet(path)
    code = cli(mongo_uri, mongo_db, "export", str(path), "--timeframe", "1d")
    out, err = capsys.readouterr()
    assert code == 1 and "rejected row 2: weight:" in err and "not finite" in err
    assert "inserted=2" in out
    assert mongo_db["crypto_signals"].find_one({"pair": "ETH/BTC"})["weight"] == 0.25
    code = cli(mongo_uri, mongo_db, "export", str(path), "--timeframe", "1d", "--allow-partial")
    assert code == 0 and "inserted=0 updated=0 unchanged=2" in capsys.readouterr().out


def test_unusable_files_exit_2(mongo_uri, mongo_db, tmp_path, capsys):
    bad = tmp_path / "signals.txt"
    bad.write_text("x")
    assert cli(mongo_uri, mongo_db, "export", str(bad)) == 2
    typo = tmp_path / "typo.csv"
    typo.write_text("ts,timeframe,pair,scroe\n2026-03-02T00:00:00Z,1h,BTC/USDT,1\n")
    assert cli(mongo_uri, mongo_db, "export", str(typo), "--strategy-id", "s") == 2
    assert "scroe" in capsys.readouterr().err


def test_latest_prints_one_row_per_pair(mongo_uri, mongo_db, tmp_path, capsys):
    path = tmp_path / "signals.csv"
    path.write_text(CSV)
    cli(mongo_uri, mongo_db, "export", str(path), "--strategy-id", "csv_v1")
    capsys.readouterr()
    assert cli(mongo_uri, mongo_db, "latest", "--strategy-id", "csv_v1", "--timeframe", "1h") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "pair" in lines[0] and "ts" in lines[0]
    assert len(lines) == 3 and "BTC/USDT" in lines[1] and "SOL/USDT" in lines[2]
    assert cli(mongo_uri, mongo_db, "latest", "--strategy-id", "nobody") == 0
    assert "no signals" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_runs_as_a_program_and_never_prints_the_password(tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text(CSV)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "EXT_SIG_MONGO_URI": "mongodb://exporter:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=200"}
    proc = subprocess.run([sys.executable, "-m", "signal_export.cli", "export", str(path),
                           "--strategy-id", "s", "--env-file", "/nonexistent",
                           "--log-level", "DEBUG"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 3
    assert "hunter2" not in proc.stdout + proc.stderr
    assert "exporter:***@" in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_export_leaves_a_true_audit_record(mongo_uri, mongo_db, tmp_path, signum):
    """SIGTERM/SIGINT mid-export: exit 130, record ``interrupted`` with the counts as stored."""
    n_bars, pairs = 3_000, [f"C{i:02d}/USDT" for i in range(40)]  # 120,000 rows
    ts = pd.date_range("2025-01-01", periods=n_bars, freq="1min", tz="UTC")
    frame = pd.DataFrame({"ts": ts.repeat(len(pairs)), "pair": pairs * n_bars,
                          "timeframe": "1m", "strategy_id": "cut", "score": 0.5})
    path = tmp_path / "big.parquet"
    frame.to_parquet(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXT_SIG_BATCH_SIZE": "2000"}
    proc = subprocess.Popen([sys.executable, "-m", "signal_export.cli", "export", str(path),
                             "--mongo-uri", mongo_uri, "--db", mongo_db.name,
                             "--env-file", "/nonexistent"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    coll, runs = mongo_db["crypto_signals"], mongo_db["export_runs"]
    deadline = time.monotonic() + 120
    while coll.estimated_document_count() < 4_000 and proc.poll() is None:
        assert time.monotonic() < deadline, "the export never got going"
        time.sleep(0.05)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    [record] = list(runs.find({"strategy_ids": "cut"}))
    stored = coll.count_documents({"strategy_id": "cut"})
    assert 0 < stored < len(frame)  # really cut short
    assert record["status"] == "interrupted"
    assert record["counts"]["inserted"] == stored and record["counts"]["updated"] == 0


@pytest.mark.parametrize(("uri", "expected", "code"), [
    ("mongodb://exporter:Pw-secret-9@127.0.0.1:notaport/", "invalid MongoDB URI", 2),
    ("mongodb://exporter:Pw-secret-9@127.0.0.1:99999/", "invalid MongoDB URI", 2),
    ("http://exporter:Pw-secret-9@127.0.0.1:27017/", "invalid MongoDB URI", 2),
    ("mongodb://exporter:Pw-secret-9@/", "invalid MongoDB URI", 2),
    ("mongodb://exporter:p@ss-secret-9@127.0.0.1:1/", "quote_plus", 2),
])
def test_a_malformed_uri_is_one_clear_line_not_a_traceback(tmp_path, uri, expected, code):
    path = tmp_path / "signals.csv"
    path.write_text(CSV)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXT_SIG_MONGO_URI": uri}
    for command in (["export", str(path), "--strategy-id", "s"], ["latest"]):
        proc = subprocess.run([sys.executable, "-m", "signal_export.cli", *command,
                               "--env-file", "/nonexistent"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr and expected in proc.stderr
        assert "secret-9" not in proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_revision_is_archived_in_the_configured_history_collection(
        mongo_uri, mongo_db, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EXT_SIG_HISTORY_COLLECTION", "signals_archive")
    path = tmp_path / "signals.parquet"
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-03-02"], utc=True),
                          "symbol": ["BINANCE:BTCUSDT"], "strategy_id": "hist_v1",
                          "weight": [0.5], "version": [1]})
    frame.to_parquet(path)
    assert cli(mongo_uri, mongo_db, "export", str(path), "--timeframe", "1d") == 0
    frame.assign(weight=[0.25], version=[2]).to_parquet(path)
    assert cli(mongo_uri, mongo_db, "export", str(path), "--timeframe", "1d") == 0
    assert "updated=1" in capsys.readouterr().out
    archived = list(mongo_db["signals_archive"].find())
    assert [(d["version"], d["weight"]) for d in archived] == [(1, 0.5)]
    assert "crypto_signals_history" not in mongo_db.list_collection_names()
    assert mongo_db["crypto_signals"].find_one()["weight"] == 0.25
