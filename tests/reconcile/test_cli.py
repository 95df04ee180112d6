"""``python -m signal_export.reconcile`` end to end: real ``freqtrade backtesting`` (started by
the command, then read back from its result folder with ``--backtest-results``), signals in
the local MongoDB server, the bot's trades from the monitor's write-back, its log.

The backtest runs with ``--signal-view latest``; the signals are never revised, so the
on-time ones trade the same in both views and the one that arrived after its decision
deadline shows up as ``signal_late`` with how late it was (the as_known view: the dry-run
acceptance test, test_reconcile_dry_run.py).
Constructed candles (open = base + i) make every backtest fill known by hand.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from test_report import documented_schema

from devservers.freqtrade_harness import REPO, STRATEGY_PATH, freqtrade_env, write_config
from signal_export.monitoring.writeback import write_trades

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BASE = {"BTC/USDT": 1000.0, "ETH/USDT": 500.0, "SOL/USDT": 50.0}


def at(hours: float) -> datetime:
    return T0 + hours * H


def open_at(pair: str, hours: int) -> float:
    return BASE[pair] + hours


def sig(pair: str, hours: int, action: str, known_after_close: timedelta) -> dict:
    ts = at(hours)
    known = ts + H + known_after_close
    return {"strategy_id": "recon", "pair": pair, "symbol": "BINANCE:" + pair.replace("/", ""),
            "timeframe": "1h", "ts": ts, "action": action, "version": 1,
            "available_at": known, "created_at": known, "updated_at": known, "run_id": "r1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_candles(datadir: Path) -> None:
    from freqtrade.data.history import get_datahandler

    handler = get_datahandler(datadir, "feather")
    dates = pd.date_range("2026-01-01", periods=30, freq="1h", tz="UTC")
    for pair in PAIRS:
        opens = BASE[pair] + np.arange(30, dtype=float)
        handler.ohlcv_store(pair, "1h", pd.DataFrame({
            "date": dates.astype("datetime64[ms, UTC]"), "open": opens, "high": opens + 0.8,
            "low": opens - 0.8, "close": opens + 0.5, "volume": 1000.0}), candle_type="spot")


def bot_trade(tid: int, pair: str, open_h: float, open_rate: float, close_h: float,
              close_rate: float, tag: str = "ext:recon:v1") -> dict:
    ms = lambda h: int(at(h).timestamp() * 1000)  # noqa: E731
    return {"trade_id": tid, "pair": pair, "is_open": False, "open_timestamp": ms(open_h),
            "close_timestamp": ms(close_h), "open_rate": open_rate, "close_rate": close_rate,
            "amount": 100.0 / open_rate, "stake_amount": 100.0, "enter_tag": tag,
            "exit_reason": tag, "profit_abs": 100.0 * (close_rate / open_rate - 1)}


@pytest.fixture(scope="module")
def standin():
    from devservers.exchange.server import ExchangeStandIn

    with ExchangeStandIn(pairs=PAIRS) as server:
        yield server


def reconcile(args: list[str], mongo_uri: str, db: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signal_export.reconcile", *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env=freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=db))


def test_cli_runs_the_backtest_and_classifies_against_the_written_back_trades(
        tmp_path, standin, mongo_uri, mongo_db):
    on_time = timedelta(minutes=-10)  # stored 10 minutes before the candle closed
    mongo_db["crypto_signals"].insert_many([
        sig("BTC/USDT", 2, "enter_long", on_time), sig("BTC/USDT", 6, "exit_long", on_time),
        sig("ETH/USDT", 4, "enter_long", on_time), sig("ETH/USDT", 8, "exit_long", on_time),
        # SOL's enter arrived 90 minutes after its candle closed: 30 minutes after the last
        # moment the bot acts on it (the next close - 1 ms: point_in_time.decision_deadline)
        sig("SOL/USDT", 10, "enter_long", timedelta(minutes=90)),
        sig("SOL/USDT", 14, "exit_long", on_time)])
    # the bot: BTC as the backtest but filled 0.5 higher on entry (5 bps); no ETH (its
    # store was out); a force-entry on SOL; no SOL signal trade (the bot saw it too late)
    write_trades(mongo_db, "dry", [
        bot_trade(1, "BTC/USDT", 3 + 1 / 60, open_at("BTC/USDT", 3) * 1.0005, 7,
                  open_at("BTC/USDT", 7)),
        bot_trade(2, "SOL/USDT", 20.5, 70.6, 22, 72.0, tag="force_entry")])
    log = tmp_path / "freqtrade.log"
    log.write_text(
        "2026-01-01 04:30:00,000 - signal_export.consumer.source - WARNING - "
        "ExternalSignalStrategy: signal store unreachable (AutoReconnect: x) at mongodb://h/; "
        "no new trades until it is back, open trades: hold\n"
        "2026-01-01 06:10:00,000 - signal_export.consumer.source - INFO - "
        "ExternalSignalStrategy: signal store reachable again, trading on signals resumes\n")
    datadir = tmp_path / "data" / "binance"
    datadir.mkdir(parents=True)
    write_candles(datadir)
    config = write_config(tmp_path / "config.json", "config.backtest.json", standin.overlay(), {
        "timeframe": "1h", "exchange": {"pair_whitelist": list(PAIRS)},
        "ext_signals": {"strategy_ids": ["recon"]}})
    work = tmp_path / "work"
    common = ["--from", "2026-01-01T00:00", "--to", "2026-01-02T00:00", "--config", str(config),
              "--writeback-bot", "dry", "--bot-log", str(log)]
    proc = reconcile([*common, "--signal-view", "latest", "--workdir", str(work),
                      "--freqtrade-args", f"--datadir {datadir} --userdir {tmp_path} "
                      f"--strategy-path {STRATEGY_PATH}", "--out", str(tmp_path / "out"),
                      "--metrics-textfile", str(tmp_path / "reconcile.prom")],
                     mongo_uri, mongo_db.name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "reconcile.json").read_text())
    jsonschema.validate(data, documented_schema())
    rows = {(t["pair"], t["outcome"]): t for t in data["trades"]}
    assert {k: v["cause"] for k, v in rows.items()} == {
        ("BTC/USDT", "both"): "slippage",
        ("ETH/USDT", "backtest_only"): "store_outage",
        ("SOL/USDT", "backtest_only"): "signal_late",
        ("SOL/USDT", "bot_only"): "manual_trade"}
    btc = rows[("BTC/USDT", "both")]
    assert btc["backtest"]["open_rate"] == open_at("BTC/USDT", 3)  # freqtrade's fill, by hand
    assert btc["backtest"]["open_time"] == at(3).isoformat()
    assert btc["entry_slippage_bps"] == pytest.approx(5.0)
    sol = rows[("SOL/USDT", "backtest_only")]
    assert sol["signal"]["late_by_s"] == pytest.approx(1800.0, abs=0.01)
    assert sol["backtest"]["open_time"] == at(11).isoformat()
    assert data["producers"] == [{"strategy_id": "recon", "signals": 6, "late": 1,
                                  "late_ratio": pytest.approx(1 / 6),
                                  "max_late_by_s": pytest.approx(1800.0, abs=0.01)}]
    assert data["signal_view"] == "latest" and data["summary"]["backtest_trades"] == 3
    assert "store_outage" in proc.stdout and "signal_late" in proc.stdout
    assert "signal_bridge_reconcile_signals_late_ratio" in (tmp_path / "reconcile.prom"
                                                            ).read_text()
    page = (tmp_path / "out" / "reconcile.html").read_text()
    assert page.count("data:image/png;base64,") == 2

    # the same backtest given as a result file: the same report
    again = reconcile([*common, "--backtest-results", str(work / "backtest_results"),
                       "--json"], mongo_uri, mongo_db.name)
    assert again.returncode == 0, again.stderr[-3000:]
    data2 = json.loads(again.stdout)
    assert data2["trades"] == data["trades"] and data2["summary"] == data["summary"]

    # --metrics-port: the same figures scraped over HTTP until SIGTERM
    port = _free_port()
    served = subprocess.Popen(
        [sys.executable, "-m", "signal_export.reconcile", *common, "--backtest-results",
         str(work / "backtest_results"), "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=mongo_db.name))
    try:
        assert "serving metrics" in served.stderr.readline()
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read(
            ).decode()
        assert 'signal_bridge_reconcile_differences{cause="store_outage"} 1.0' in text
        assert 'signal_bridge_reconcile_signals_late_ratio{strategy_id="recon"}' in text
    finally:
        served.send_signal(signal.SIGTERM)
        assert served.wait(30) == 0


def test_cli_names_the_bad_input(tmp_path, mongo_uri, mongo_db):
    proc = reconcile(["--from", "2026-01-01", "--to", "yesterday-ish", "--bot-db",
                      str(tmp_path / "none.sqlite"), "--timeframe", "1h"], mongo_uri,
                     mongo_db.name)
    assert proc.returncode == 2 and "--to 'yesterday-ish'" in proc.stderr
    proc = reconcile(["--from", "2026-01-01", "--to", "2026-01-02", "--bot-db",
                      str(tmp_path / "none.sqlite"), "--timeframe", "1h"], mongo_uri,
                     mongo_db.name)
    assert proc.returncode == 2 and "--bot-db" in proc.stderr and "no such file" in proc.stderr
    proc = reconcile(["--from", "2026-01-01", "--to", "2026-01-02", "--writeback-bot", "x",
                      "--timeframe", "1h", "--backtest-results", str(tmp_path / "nope.zip")],
                     mongo_uri, mongo_db.name)
    assert proc.returncode == 2 and "--backtest-results" in proc.stderr
