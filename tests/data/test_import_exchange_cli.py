"""``research import-exchange`` end to end: the CLI, real ccxt, the Binance stand-in, MongoDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from market_data_helpers import FROZEN_NOW

from research.cli import EXIT_EXCHANGE, EXIT_INPUT, EXIT_OK, main
from research.data.readers import get_crypto_bars, get_crypto_market_data, get_crypto_min_data
from research.data.synthetic import generate_ohlcv, generate_symbol_ohlcv

RESEARCH = Path(sys.executable).with_name("research")
SINCE = "2024-06-02T20:00:00Z"
LAST_CLOSED = FROZEN_NOW.floor("1min") - pd.Timedelta("1min")  # 00:09


def _config(tmp_path: Path, standin, freqtrade_form: bool = False) -> Path:
    overlay = standin.overlay()
    data = overlay if freqtrade_form else overlay["exchange"]["ccxt_config"]
    path = tmp_path / "exchange.json"
    path.write_text(json.dumps(data))
    return path


def _args(mongo_uri: str, db, *extra: str) -> list[str]:
    return ["import-exchange", "--mongo-uri", mongo_uri, "--market-db", db.name,
            "--env-file", "/nonexistent/.env", *extra]


def test_import_then_rerun_through_the_cli(standin, store, market, mongo_uri, mongo_db, tmp_path,
                                           capsys):
    config = _config(tmp_path, standin)
    argv = _args(mongo_uri, mongo_db, "--exchange", "binance", "--pairs",
                 "BTC/USDT,BINANCE:ETHUSDT", "--timeframe", "1m", "--start", SINCE,
                 "--exchange-config", str(config), "--limit", "100", "--quiet")
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    got = get_crypto_min_data(market.symbols, SINCE, "2024-06-03", db=store)
    want = generate_ohlcv(market, pd.Timestamp(SINCE), FROZEN_NOW.floor("1min"), "1m")
    pd.testing.assert_frame_equal(got, want)  # exactly the closed bars, as served
    assert got["datetime"].max() == LAST_CLOSED
    lines = out.splitlines()
    assert lines[0] == f"import-exchange binance 1m -> {mongo_db.name}.crypto_market_1m"
    btc = next(line for line in lines if line.startswith("BINANCE:BTCUSDT"))
    assert btc.split()[:5] == ["BINANCE:BTCUSDT", "250", "250", "0", "0"]
    assert "2024-06-02 20:00" in btc and "2024-06-03 00:09" in btc
    assert next(line for line in lines if line.startswith("total")).split()[:5] == [
        "total", "500", "500", "0", "0"]
    assert "8 requests, 0 retries" in out and "0 gaps" in out  # markets, time, 6 pages
    assert len(lines) <= 24  # one screen
    klines = standin.requests["/api/v3/klines"]

    assert main(argv) == EXIT_OK  # resumable and idempotent: nothing left to fetch
    again = capsys.readouterr().out
    assert next(line for line in again.splitlines() if line.startswith("total")).split()[:5] \
        == ["total", "0", "0", "0", "0"]
    assert "nothing new" in again
    assert standin.requests["/api/v3/klines"] == klines
    assert store.collection("1m").count_documents({}) == len(want)

    # the 1h bars read back from what was imported (derived from 1m)
    hours = get_crypto_bars("BTC/USDT", SINCE, "2024-06-03", "1h", db=store)
    assert hours["datetime"].dt.strftime("%H:%M").tolist() == ["20:00", "21:00", "22:00",
                                                               "23:00", "00:00"]


def test_end_bounds_the_range_and_daily_bars_come_from_a_freqtrade_style_config(
        standin, store, market, mongo_uri, mongo_db, tmp_path, capsys):
    config = _config(tmp_path, standin, freqtrade_form=True)
    assert main(_args(mongo_uri, mongo_db, "--pairs", "ETH/USDT", "--timeframe", "1d",
                      "--start", "2024-05-01", "--end", "2024-05-31",
                      "--exchange-config", str(config), "--quiet")) == EXIT_OK
    capsys.readouterr()
    got = get_crypto_market_data("ETH/USDT", "20240101", "20241231", db=store)
    want = generate_symbol_ohlcv(market, "ETH/USDT", "2024-05-01T00:00Z", "2024-06-01T00:00Z",
                                 "1d").rename(columns={"date": "datetime"})
    assert got["date"].tolist() == want["datetime"].tolist()  # May 1 .. May 31, inclusive
    assert len(got) == 31


def test_the_real_entry_point_shows_progress_and_the_summary(standin, store, mongo_uri,
                                                             mongo_db, tmp_path):
    config = _config(tmp_path, standin)
    gaps = tmp_path / "gaps.csv"
    proc = subprocess.run(
        [str(RESEARCH), *_args(mongo_uri, mongo_db, "--pairs", "BTC/USDT", "--start", SINCE,
                               "--exchange-config", str(config), "--gaps-csv", str(gaps))],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "ohlcv 1m" in proc.stderr and "250/250" in proc.stderr  # the tqdm bar
    assert "BINANCE:BTCUSDT" in proc.stdout and "0 gaps" in proc.stdout
    assert pd.read_csv(gaps).empty
    assert store.collection("1m").count_documents({}) == 250


@pytest.mark.parametrize(("extra", "message"), [
    (["--exchange", "binanse"], "error: unknown exchange 'binanse' (did you mean binance"),
    (["--pairs", "BTC/USDT,DOGE/USDT"], "error: unknown symbol(s) on binance: DOGE/USDT"),
    (["--pairs", "BTCUSDT"], "error: --pairs 'BTCUSDT': expected a pair like BTC/USDT"),
    (["--timeframe", "7x"], "error: timeframe '7x' is not of the form"),
    (["--timeframe", "1h"], "error: timeframe '1h': the market store keeps 1m, 1d and derives "
                            "1h from 1m when read - import --timeframe 1m"),
    (["--timeframe", "1w"], "error: timeframe '1w': the market store keeps 1m, 1d"),
    (["--start", "yesterday"], "error: --start: cannot parse 'yesterday'"),
    (["--limit", "0"], "error: --limit must be >= 1"),
    (["--start", "2024-06-02", "--end", "2024-06-01"], "error: --end 2024-06-01 is before"),
])
def test_bad_input_is_one_line_and_exit_2(standin, store, mongo_uri, mongo_db, tmp_path, capsys,
                                          extra, message):
    base = {"--exchange": "binance", "--pairs": "BTC/USDT", "--timeframe": "1m",
            "--start": SINCE, "--exchange-config": str(_config(tmp_path, standin))}
    for i in range(0, len(extra), 2):
        base[extra[i]] = extra[i + 1]
    argv = _args(mongo_uri, mongo_db, "--quiet", *[x for kv in base.items() for x in kv])
    assert main(argv) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert store.collection("1m").count_documents({}) == 0


def test_bad_exchange_config_and_an_unreachable_exchange(store, mongo_uri, mongo_db, tmp_path,
                                                         capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(_args(mongo_uri, mongo_db, "--pairs", "BTC/USDT", "--start", SINCE,
                      "--exchange-config", str(broken), "--quiet")) == EXIT_INPUT
    assert capsys.readouterr().err.startswith(f"error: --exchange-config {broken}: not valid JSON")

    nowhere = tmp_path / "nowhere.json"  # a port nothing listens on
    url = "http://127.0.0.1:9"
    nowhere.write_text(json.dumps({"urls": {"api": {k: url + "/api/v3" for k in (
        "public", "private", "v1", "v3")}}, "timeout": 2000}))
    assert main(_args(mongo_uri, mongo_db, "--pairs", "BTC/USDT", "--start", SINCE,
                      "--exchange-config", str(nowhere), "--max-retries", "0",
                      "--quiet")) == EXIT_EXCHANGE
    err = capsys.readouterr().err
    assert err.startswith("error: exchange binance: ") and len(err.strip().splitlines()) == 1
