"""The decision parameters in-process: defaults from ext_signals, ranges, result files, pickling.

The end-to-end run is ``test_hyperopt.py``; here the pieces: a configured value
is the parameter's default exactly (so decision parity holds without hyperopt,
however many decimals it has), the search ranges contain it and keep the score
ranges apart, a result file is read into ``ext_signals`` keys, the strategy
decides with the parameters' values, and the strategy's logic pickles (hyperopt
sends it to its workers) without its MongoDB client.
"""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest
from strategy_helpers import REPO, constructed_candles

from signal_export.bridge import main as bridge_main
from signal_export.consumer.config import ConfigError, load_config
from signal_export.consumer.hyperopt import (
    KNOB_NAMES,
    check_ranges,
    decimals_for,
    decision_params,
    search_ranges,
)
from signal_export.consumer.logic import ExternalSignalLogic
from signal_export.consumer.matching import DecisionSettings


def load_strategy(monkeypatch, tmp_path, ext_signals: dict, runmode: str = "backtest"):
    from freqtrade.enums import RunMode
    from freqtrade.resolvers import StrategyResolver

    for name in ("EXT_SIG_STRATEGY_ID", "EXT_SIG_DB", "EXT_SIG_MONGO_URI", "EXT_SIG_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    config = {"strategy": "ExternalSignalStrategy",
              "strategy_path": str(REPO / "user_data" / "strategies"),
              "user_data_dir": tmp_path, "timeframe": "1h", "stake_currency": "USDT",
              "ext_signals": {"strategy_ids": ["demo"], **ext_signals},
              "runmode": RunMode(runmode), "dry_run": True, "trading_mode": "spot",
              "margin_mode": "", "stoploss": -0.99, "minimal_roi": {"0": 100}}
    return StrategyResolver.load_strategy(config)


def test_decimals_hold_the_configured_value_exactly():
    assert decimals_for(0.6) == 2 and decimals_for(0.537) == 3 and decimals_for(5) == 2
    assert decimals_for(0.1234567) == 7 and decimals_for(1e-12) == 10


def test_ranges_contain_the_configured_value_and_take_overrides():
    ranges = search_ranges(DecisionSettings(enter_score=0.97, exit_score=0.02, min_hold_bars=40))
    assert ranges["enter_score"] == (0.5, 0.97) and ranges["exit_score"] == (0.02, 0.45)
    assert ranges["min_hold_bars"] == (0, 40) and ranges["confirm_n"] == (1, 4)
    ranges = search_ranges(DecisionSettings(), {"confirm_n": (2.0, 3.0)})
    assert ranges["confirm_n"] == (1, 3)  # widened to the configured 1, whole bars
    check_ranges(search_ranges(DecisionSettings()))
    with pytest.raises(ConfigError, match="exit_score range .* overlaps"):
        check_ranges(search_ranges(DecisionSettings(enter_score=0.3, exit_score=0.2)))


@pytest.mark.parametrize(("ranges", "needle"), [
    ({"tolerance_bars": [1, 3]}, "'tolerance_bars' is not tuned by hyperopt"),
    ({"enter_score": [0.9, 0.5]}, "low (0.9) must be below high (0.5)"),
    ({"confirm_n": [1, 2.5]}, "whole numbers"),
])
def test_bad_hyperopt_ranges_are_named(ranges, needle):
    with pytest.raises(ConfigError) as err:
        load_config({"timeframe": "1h", "ext_signals": {"strategy_ids": ["a"],
                                                        "hyperopt_ranges": ranges}}, env={})
    assert "ext_signals.hyperopt_ranges" in str(err.value) and needle in str(err.value)


def test_parameters_default_to_the_ext_signals_values(monkeypatch, tmp_path):
    settings = {"enter_score": 0.537, "exit_score": 0.211, "confirm_n": 2, "cooldown_bars": 5,
                "min_hold_bars": 30}
    strategy = load_strategy(monkeypatch, tmp_path, settings)
    strategy.ft_load_hyper_params(False)
    params = dict(strategy.enumerate_parameters())
    assert set(params) == set(KNOB_NAMES)
    assert {n: p.value for n, p in params.items()} == settings
    assert {n: p.space for n, p in params.items()} == {
        "enter_score": "buy", "confirm_n": "buy", "cooldown_bars": "buy",
        "exit_score": "sell", "min_hold_bars": "sell"}
    assert params["min_hold_bars"].high == 30  # the range grew to hold the configured value
    strategy._use_parameters()
    assert strategy.ext.settings == DecisionSettings(**settings)
    # another value (a result file, an epoch) changes the rules, and the live window with them
    params["min_hold_bars"].value = 60
    strategy._use_parameters()
    assert strategy.ext.rules.min_hold_bars == 60
    assert strategy.ext.source.lookback_bars == strategy.ext.settings.lookback_bars


def test_the_decision_uses_the_parameter_values(monkeypatch, tmp_path):
    from freqtrade.data.dataprovider import DataProvider

    strategy = load_strategy(monkeypatch, tmp_path, {})
    strategy.ft_load_hyper_params(False)
    strategy.dp = DataProvider(strategy.config, None)  # no pairlists, as in plot-dataframe
    frame = constructed_candles("BTC/USDT", "2026-01-01", 10)
    sig = pd.DataFrame({"pair": ["BTC/USDT"] * 2, "strategy_id": ["demo"] * 2,
                        "ts": pd.to_datetime(["2026-01-01 02:00", "2026-01-01 05:00"], utc=True)
                        .astype("datetime64[ms, UTC]"),
                        "valid_until": pd.Series([pd.NaT] * 2, dtype="datetime64[ms, UTC]"),
                        "action": [None, None], "score": [0.7, 0.9], "weight": [float("nan")] * 2,
                        "version": [1, 1]})
    strategy.ext.source.signals_for = lambda pair: sig
    strategy.ext.source.covers = lambda *a: True
    strategy.ext.source.available = True
    meta = {"pair": "BTC/USDT"}
    out = strategy.populate_exit_trend(strategy.populate_entry_trend(frame.copy(), meta), meta)
    assert out["enter_long"].tolist()[2] == 1  # 0.7 >= 0.6
    strategy.enter_score.value = 0.8
    out = strategy.populate_entry_trend(frame.copy(), meta)
    assert out["enter_long"].sum() == 1 and out["enter_long"].tolist()[5] == 1
    assert (out["ext_enter_score"] == 0.8).all()


def test_overlapping_ranges_stop_hyperopt_at_start(monkeypatch, tmp_path):
    from freqtrade.exceptions import OperationalException

    bad = {"enter_score": 0.45, "exit_score": 0.3}  # the default ranges then overlap
    load_strategy(monkeypatch, tmp_path, bad)  # fine outside hyperopt
    with pytest.raises(OperationalException, match="hyperopt_ranges"):
        load_strategy(monkeypatch, tmp_path, bad, runmode="hyperopt")


def test_the_logic_pickles_without_its_client_and_keeps_its_signals(mongo_uri, mongo_db):
    mongo_db["crypto_signals"].insert_one({
        "ts": pd.Timestamp("2026-01-01 03:00", tz="UTC").to_pydatetime(), "timeframe": "1h",
        "pair": "BTC/USDT", "symbol": "BINANCE:BTCUSDT", "strategy_id": "demo", "version": 1,
        "action": "enter_long"})
    logic = ExternalSignalLogic({"timeframe": "1h", "ext_signals": {"strategy_ids": ["demo"]}},
                                live=False, env={"EXT_SIG_MONGO_URI": mongo_uri,
                                                 "EXT_SIG_DB": mongo_db.name},
                                runmode="hyperopt")
    frame = constructed_candles("BTC/USDT", "2026-01-01", 10)
    logic.prepare(frame, "BTC/USDT", ["BTC/USDT"])
    assert logic.source._client is not None
    worker = pickle.loads(pickle.dumps(logic))
    assert worker.source._client is None
    queries = worker.source.queries
    out = worker.decide(constructed_candles("BTC/USDT", "2026-01-01", 10), "BTC/USDT",
                        ["BTC/USDT"])
    assert out["ext_enter_long"].tolist()[3] == 1 and worker.source.queries == queries
    logic.source.close()


def test_result_file_to_ext_signals_block(tmp_path, capsys):
    path = tmp_path / "ExternalSignalStrategy.json"
    path.write_text(json.dumps({"strategy_name": "ExternalSignalStrategy", "params": {
        "buy": {"enter_score": 0.72, "confirm_n": 2, "cooldown_bars": 1},
        "sell": {"exit_score": 0.3, "min_hold_bars": 4}, "stoploss": {"stoploss": -0.99}}}))
    assert decision_params(path) == {"enter_score": 0.72, "confirm_n": 2, "cooldown_bars": 1,
                                     "exit_score": 0.3, "min_hold_bars": 4}
    assert bridge_main(["hyperopt-params", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  enter_score: 0.72", "  confirm_n: 2", "  cooldown_bars: 1", "  exit_score: 0.3",
        "  min_hold_bars: 4"]
    assert bridge_main(["hyperopt-params", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ext_signals"]["min_hold_bars"] == 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"params": {"buy": {"enter_score": 0.2}, "sell": {
        "exit_score": 0.5}}}))
    with pytest.raises(ConfigError, match="exit_score"):
        decision_params(bad)
    assert bridge_main(["hyperopt-params", str(bad)]) == 2
    assert bridge_main(["hyperopt-params", str(tmp_path / "missing.json")]) == 2
    assert "not a readable hyperopt result file" in capsys.readouterr().err


def test_the_hyperopt_and_plot_extras_are_pinned_in_the_lock():
    """What ``pip install '.[hyperopt,plot]'`` adds is in requirements.lock (``make setup``)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from scripts.runtime_lock import project_requirements, requirement_closure

    lock = {canonicalize_name(Requirement(line).name)
            for line in (REPO / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    closure = set(requirement_closure(project_requirements(["hyperopt", "plot"])))
    assert {"optuna", "cmaes", "scikit-learn", "filelock", "plotly"} <= closure
    assert closure <= lock, sorted(closure - lock)
