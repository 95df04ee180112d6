"""Freqtrade's own tools with ExternalSignalStrategy, through the real ``freqtrade`` CLI.

* ``plot-dataframe`` runs (no live-only call outside live modes) and the chart
  holds the signals: the stored score and weight, the thresholds, and the
  enter/exit marks Freqtrade draws;
* FreqUI's data through the API server (``freqtrade webserver``): the same
  ``plot_config`` and the signal columns of an analysed pair;
* honest empty runs: a typo'd strategy id ends with the per-id counts and the
  ids that are stored, at the start and the end of the backtest; an
  ``EXT_SIG_STRATEGY_ID`` replacing the config's ids is logged once, naming it;
* ``list-strategies`` lists the strategy once with the documented commands.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from strategy_helpers import (
    FREQTRADE,
    PAIRS,
    REPO,
    constructed_candles,
    deep_merge,
    freqtrade_env,
    unwrap,
)

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N_BARS = 30


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def doc(pair: str, hours: float, sid: str = "demo", **fields) -> dict:
    return {"ts": at(hours), "timeframe": "1h", "symbol": "BINANCE:" + pair.replace("/", ""),
            "pair": pair, "strategy_id": sid, "version": 1, **fields}


def candles(pairs=PAIRS) -> dict:
    return {p: constructed_candles(p, "2026-01-01", N_BARS) for p in pairs}


SIGNALS = [
    doc("BTC/USDT", 2, score=0.83),  # enter
    doc("BTC/USDT", 5, score=0.5),  # between the thresholds: no action, still charted
    doc("BTC/USDT", 7, score=0.12),  # exit
    doc("BTC/USDT", 10, weight=0.25),  # enter, weight 0.25
    doc("BTC/USDT", 14, weight=0.0),  # exit
]


def traces(html: str) -> dict[str, str]:
    """The plotly traces in a plot-dataframe file: name -> trace type (the figure JSON is
    embedded in the page; each trace object is ``{...,"name":"X",...,"type":"T"}``)."""
    out = {}
    for match in re.finditer(r'"name":"([^"]+)".*?"type":"(\w+)"', html):
        out.setdefault(match.group(1), match.group(2))
    return out


def test_plot_dataframe_charts_the_signals(freqtrade_cli, mongo_db, tmp_path):
    mongo_db["crypto_signals"].insert_many(SIGNALS)
    log = freqtrade_cli("plot-dataframe", mongo_db.name, candles(), {"strategy_ids": ["demo"]},
                        timerange="20260101-20260102", args=["-p", "BTC/USDT", "--no-trades"])
    log = unwrap(log)
    assert "Traceback" not in log and "pairlist provider" not in log
    html = (tmp_path / "plot" / "freqtrade-plot-BTC_USDT-1h.html").read_text()
    names = traces(html)
    # the stored values, the thresholds the decision used, and Freqtrade's enter/exit marks
    for name in ("ext_score", "ext_signal_weight", "ext_enter_score", "ext_exit_score",
                 "enter_long", "exit_long"):
        assert name in names, (name, sorted(names))
    assert names["ext_score"] == "bar" and names["ext_enter_score"] == "scatter"
    # the subplots of plot_config
    assert "signal score" in html and "signal weight" in html
    assert re.search(r"ext_signals plot start: signals found per strategy id .*demo=5", log)


def test_api_server_gives_frequi_the_plot_config_and_the_signal_columns(
        tmp_path, standin, mongo_uri, mongo_db):
    import socket

    from strategy_helpers import write_candles

    mongo_db["crypto_signals"].insert_many(SIGNALS)
    datadir = tmp_path / "data" / "binance"
    datadir.mkdir(parents=True)
    write_candles(datadir, candles(), "1h")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = json.loads((REPO / "configs" / "config.backtest.json").read_text())
    cfg = deep_merge(deep_merge(base, standin.overlay()), {
        "timeframe": "1h", "exchange": {"pair_whitelist": list(PAIRS)},
        "strategy_path": str(REPO / "user_data" / "strategies"), "datadir": str(datadir),
        "api_server": {"enabled": True, "listen_ip_address": "127.0.0.1", "listen_port": port,
                       "username": "u", "password": "p", "jwt_secret_key": "k" * 40,
                       "CORS_origins": [], "verbosity": "error"}})
    cfg["ext_signals"] = {"strategy_ids": ["demo"]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen([FREQTRADE, "webserver", "-c", str(path), "--userdir", str(tmp_path)],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            env=freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri,
                                              EXT_SIG_DB=mongo_db.name))
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(auth=("u", "p"), timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get(f"{url}/ping").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (
                    (tmp_path / "webserver.log").read_text()[-3000:])
                time.sleep(0.5)
            plot = client.get(f"{url}/plot_config",
                              params={"strategy": "ExternalSignalStrategy"})
            assert plot.status_code == 200, plot.text
            from signal_export.strategies.ExternalSignalStrategy import PLOT_CONFIG

            assert plot.json() == PLOT_CONFIG
            # FreqUI's chart of a pair in webserver mode: the strategy analyses stored candles
            # without a pairlist provider
            hist = client.get(f"{url}/pair_history", params={
                "pair": "BTC/USDT", "timeframe": "1h", "timerange": "20260101-20260102",
                "strategy": "ExternalSignalStrategy"})
            assert hist.status_code == 200, hist.text
            body = hist.json()
            cols = body["columns"]
            for col in ("ext_score", "ext_signal_weight", "ext_enter_score", "enter_long",
                        "exit_long"):
                assert col in cols, (col, cols)
            rows = [dict(zip(cols, r, strict=True)) for r in body["data"]]
            by_hour = {(datetime.fromisoformat(r["date"].replace("Z", "+00:00")) - T0)
                       / timedelta(hours=1): r for r in rows}
            assert by_hour[2]["ext_score"] == 0.83 and by_hour[2]["enter_long"] == 1
            assert by_hour[5]["ext_score"] == 0.5 and by_hour[5]["enter_long"] == 0
            assert by_hour[7]["exit_long"] == 1
            assert by_hour[10]["ext_signal_weight"] == 0.25
            assert body["enter_long_signals"] == 2 and body["exit_long_signals"] == 2
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_a_typo_in_the_strategy_id_names_the_counts_and_the_stored_ids(run_backtest, mongo_db):
    mongo_db["crypto_signals"].insert_many(
        SIGNALS + [doc("ETH/USDT", 3, sid="other", action="enter_long"),
                   {**doc("SOL/USDT", 3, sid="daily_model", action="enter_long"),
                    "timeframe": "1d"}])
    trades = run_backtest(mongo_db.name, candles(), {"strategy_ids": ["dmeo"]},
                          timerange="20260101-20260102")
    log = unwrap(trades.attrs["log"])
    assert trades.empty
    for when in ("start", "end"):
        found = re.findall(rf"ext_signals backtest {when}: signals found per strategy id in "
                           rf"(\S+ \S+ \.\. \S+ \S+) UTC \(timeframe 1h, [^)]*\): "
                           rf"dmeo=0(?=\s|$)", log)
        assert len(found) == 1, log[-3000:]
        stored = re.findall(rf"WARNING - ext_signals backtest {when}: no signals for strategy id "
                            rf"'dmeo' in .* UTC; strategy ids stored for timeframe 1h: "
                            rf"demo, other(?=\s|$)", log)
        assert len(stored) == 1, log[-3000:]
    # the end line comes after the simulation, the start line before it
    assert log.index("backtest start: signals found") < log.index("Backtesting with data from")
    assert log.index("backtest end: signals found") > log.index("Backtesting with data from")


def test_found_counts_with_the_right_id_and_no_distinct_warning(run_backtest, mongo_db):
    mongo_db["crypto_signals"].insert_many(SIGNALS)
    trades = run_backtest(mongo_db.name, candles(), {"strategy_ids": ["demo"]},
                          timerange="20260101-20260102")
    log = unwrap(trades.attrs["log"])
    assert len(trades) == 2
    assert len(re.findall(r"signals found per strategy id in .*?: demo=5(?=\s|$)", log)) == 2
    assert "no signals for strategy id" not in log


def test_the_environment_replacing_the_configs_strategy_ids_is_logged_once(
        freqtrade_cli, mongo_db, tmp_path):
    mongo_db["crypto_signals"].insert_many(SIGNALS)
    log = freqtrade_cli("backtesting", mongo_db.name, candles(), {"strategy_ids": ["stale_id"]},
                        timerange="20260101-20260102", args=["--cache", "none"],
                        env={"EXT_SIG_STRATEGY_ID": "demo"})
    log = unwrap(log)
    lines = [ln for ln in log.splitlines() if "ext_signals settings (" in ln]
    assert len(lines) == 1, lines
    assert " - WARNING - " in lines[0]
    assert ("strategy_ids=demo from EXT_SIG_STRATEGY_ID in the environment, overriding the "
            "config's ext_signals.strategy_ids=['stale_id']") in lines[0]
    assert f"db={mongo_db.name} from EXT_SIG_DB in the environment" in lines[0]
    assert "collection=crypto_signals from default" in lines[0]

    # the same id from a .env file in the working directory: named as such, not a warning
    (tmp_path / ".env").write_text("EXT_SIG_STRATEGY_ID=demo\n")
    log = freqtrade_cli("backtesting", mongo_db.name, candles(), {"strategy_ids": ["demo"]},
                        timerange="20260101-20260102", args=["--cache", "none"])
    log = unwrap(log)
    line = next(ln for ln in log.splitlines() if "ext_signals settings (" in ln)
    assert " - INFO - " in line
    assert (f"strategy_ids=demo from EXT_SIG_STRATEGY_ID in {tmp_path / '.env'} "
            "(the config's ext_signals.strategy_ids is the same)") in line


def _listed(args: list[str], cwd: Path) -> list[str]:
    proc = subprocess.run([FREQTRADE, "list-strategies", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=freqtrade_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [ln for ln in proc.stdout.splitlines() if "ExternalSignalStrategy" in ln]


def test_list_strategies_lists_it_once_with_the_documented_commands(tmp_path):
    # README: the repository's userdir (its strategies folder holds the shim subclass)
    rows = _listed(["--userdir", "user_data"], cwd=REPO)
    assert len(rows) == 1, rows
    assert " OK " in rows[0] and "DUPLICATE" not in rows[0]
    # hyperoptable: 3 buy and 2 sell parameters
    assert re.search(r"\bYes\s*│\s*3\s*│\s*2\s*│", rows[0]), rows[0]
    # a strategy path outside the userdir: once as well
    (tmp_path / "ud").mkdir()
    rows = _listed(["--userdir", str(tmp_path / "ud"), "--strategy-path",
                    str(REPO / "user_data" / "strategies")], cwd=tmp_path)
    assert len(rows) == 1 and " OK " in rows[0], rows
    # what signal-bridge install-strategy puts into a userdir is listed once too
    userdir = tmp_path / "trader"
    subprocess.run([str(Path(FREQTRADE).with_name("signal-bridge")), "install-strategy",
                    "--userdir", str(userdir)], check=True, capture_output=True, timeout=60)
    rows = _listed(["--userdir", str(userdir)], cwd=tmp_path)
    assert len(rows) == 1 and " OK " in rows[0], rows
    shutil.rmtree(userdir)
