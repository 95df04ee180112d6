"""Synthetic data -> factors -> signals -> backtest -> report -> export, read back from MongoDB."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pipeline_data import make_config

from research.data.market_store import upsert_candles
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.factors import compute_factors
from research.pipeline import (
    REPORT_FILES,
    RUN_INFO_FILE,
    factor_frame,
    generate_signals,
    load_market,
    run_pipeline,
)
from signal_export.contract import (
    SIGNAL_FIELDS,
    SIGNALS_COLLECTION,
    STORED_ONLY_FIELDS,
    symbol_to_pair,
)


def _stored(mongo_db, strategy_id: str) -> list[dict]:
    return list(mongo_db[SIGNALS_COLLECTION].find({"strategy_id": strategy_id})
                .sort([("pair", 1), ("ts", 1)]))


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def test_exported_signals_read_back_equal_to_the_frame(mongo_db, settings, tmp_path):
    config = make_config(tmp_path)
    result = run_pipeline(config, db=mongo_db, settings=settings)

    signals = result.signals
    assert len(signals) > 10  # the rule fires on this data: the test compares something
    assert result.export.inserted == len(signals)
    assert result.export.rejected == result.export.failed == 0

    stored = _stored(mongo_db, "pipe_test")
    assert len(stored) == len(signals)
    expected = signals.sort_values(["pair", "ts"], ignore_index=True)
    for doc, (_, row) in zip(stored, expected.iterrows(), strict=True):
        # every field the row sets, the bookkeeping, and nothing else (unset fields are absent)
        set_fields = {n for n in SIGNAL_FIELDS if n in row and not _same(None, row[n])}
        assert set(doc) == set_fields | set(STORED_ONLY_FIELDS)
        assert doc["ts"] == row["ts"].to_pydatetime()
        assert doc["ts"].tzinfo is not None
        for name in ("timeframe", "symbol", "pair", "strategy_id", "action", "note", "source"):
            assert _same(doc.get(name), row[name]), name
        for name in ("score", "weight"):
            assert _same(doc.get(name), row[name]), name
        assert doc["version"] == int(row["version"]) == 1
        assert doc["pair"] == symbol_to_pair(doc["symbol"])
        assert "valid_until" not in doc and "extra" not in doc

    runs = list(mongo_db["export_runs"].find({"run_id": result.export.run_id}))
    assert len(runs) == 1 and runs[0]["counts"]["inserted"] == len(signals)
    assert runs[0]["extra"]["pipeline"] == "t"


def test_factors_and_backtest_follow_the_signals(mongo_db, settings, tmp_path):
    config = make_config(tmp_path)
    result = run_pipeline(config, db=mongo_db, settings=settings, export=False)

    market = generate_ohlcv(SyntheticMarket(seed=11, symbols=tuple(config.universe)),
                            pd.Timestamp("2024-01-01", tz="UTC"),
                            pd.Timestamp("2025-01-01", tz="UTC"), "1d")
    direct = compute_factors(market, config.factors)
    assert np.allclose(result.factors["rsi_14"], direct["rsi_14"], equal_nan=True, rtol=0,
                       atol=0)

    # each enter_long at bar t is filled at the open of bar t+1 (Freqtrade's convention)
    trades = result.backtest.trades
    enters = result.signals[result.signals["action"] == "enter_long"]
    expected_entries = sorted((s, ts + pd.Timedelta(days=1))
                              for s, ts in zip(enters["symbol"], enters["ts"], strict=True)
                              if ts + pd.Timedelta(days=1) <= pd.Timestamp("2024-12-31", tz="UTC"))
    got = sorted(zip(trades["symbol"], pd.to_datetime(trades["entry_time"], utc=True),
                     strict=True))
    assert got == expected_entries
    assert result.export is None


def test_rerun_changes_nothing_in_mongo_and_reproduces_the_report(mongo_db, settings, tmp_path):
    config = make_config(tmp_path)
    first = run_pipeline(config, db=mongo_db, settings=settings, output_dir=tmp_path / "a")
    before = {d["_id"]: d for d in _stored(mongo_db, "pipe_test")}
    second = run_pipeline(config, db=mongo_db, settings=settings, output_dir=tmp_path / "b")

    assert first.export.inserted == len(first.signals) > 0
    assert (second.export.inserted, second.export.updated) == (0, 0)
    assert second.export.unchanged == len(first.signals)
    after = {d["_id"]: d for d in _stored(mongo_db, "pipe_test")}
    assert after == before  # updated_at, run_id: untouched

    for name in REPORT_FILES:
        a, b = (tmp_path / "a" / name).read_bytes(), (tmp_path / "b" / name).read_bytes()
        assert a == b, f"{name} differs between runs"
        assert len(a) > 0
    info_a = (tmp_path / "a" / RUN_INFO_FILE).read_text()
    info_b = (tmp_path / "b" / RUN_INFO_FILE).read_text()
    assert info_a != info_b  # the run-specific facts live there and only there
    assert '"inserted": 0' in info_b


def test_saved_signals_parquet_is_the_exported_frame(mongo_db, settings, tmp_path):
    config = make_config(tmp_path)
    result = run_pipeline(config, db=mongo_db, settings=settings, export=False)
    saved = pd.read_parquet(result.report_files["signals.parquet"])
    pd.testing.assert_frame_equal(saved, result.signals, check_dtype=False)
    html = result.report_files["report.html"].read_text()
    assert "pipe_test" in html and "<img" in html


def test_dry_run_validates_but_writes_nothing(mongo_db, settings, tmp_path):
    config = make_config(tmp_path)
    result = run_pipeline(config, db=mongo_db, settings=settings, dry_run=True)
    assert result.export.dry_run and result.export.submitted == len(result.signals) > 0
    assert result.export.rejected == 0
    assert mongo_db[SIGNALS_COLLECTION].count_documents({}) == 0


def test_weight_signals_drive_positions(mongo_db, settings, tmp_path):
    config = make_config(tmp_path, factors=[{"name": "ret", "params": {"horizon": 10}}],
                         generator={"type": "rank", "params": {"factor": "ret_10", "top_n": 1}})
    result = run_pipeline(config, db=mongo_db, settings=settings)
    held = result.backtest.position
    # at most one symbol is held per bar (top-1), and something is held most of the time
    assert held.sum(axis=1).max() == 1
    assert held.to_numpy().mean() > 0.2
    assert result.export.inserted == len(result.signals)
    doc = mongo_db[SIGNALS_COLLECTION].find_one({"strategy_id": "pipe_test", "weight": 1.0})
    assert doc is not None and "action" not in doc  # a weight signal: no action stored


def _generated_signals(tmp_path, **overrides) -> pd.DataFrame:
    config = make_config(tmp_path, **overrides)
    return generate_signals(config, factor_frame(config, load_market(config)))


def test_file_source_gives_the_same_signals_as_the_generator(tmp_path):
    market = generate_ohlcv(SyntheticMarket(seed=11, symbols=("BTC/USDT", "ETH/USDT",
                                                               "SOL/USDT")),
                            pd.Timestamp("2024-01-01", tz="UTC"),
                            pd.Timestamp("2025-01-01", tz="UTC"), "1d")
    path = tmp_path / "candles.csv"
    market.assign(datetime=market["datetime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        path, index=False)
    from_file = _generated_signals(tmp_path, data={"kind": "file", "path": str(path)})
    assert len(from_file) > 0
    pd.testing.assert_frame_equal(from_file, _generated_signals(tmp_path))


def test_mongo_source_builds_hourly_bars_from_stored_minutes(mongo_db, settings, tmp_path):
    symbols = ("BTC/USDT", "ETH/USDT")
    minutes = generate_ohlcv(SyntheticMarket(seed=11, symbols=symbols),
                             pd.Timestamp("2024-03-01", tz="UTC"),
                             pd.Timestamp("2024-03-04", tz="UTC"), "1m")
    upsert_candles(minutes, mongo_db, "1m")
    hourly = {"universe": list(symbols), "timeframe": "1h", "start": "2024-03-01",
              "end": "2024-03-03", "factors": [{"name": "rsi", "params": {"period": 6}}],
              "generator": {"type": "threshold",
                            "params": {"enter": "rsi_6 > 60", "exit": "rsi_6 < 40"}}}
    config = make_config(tmp_path, data={"kind": "mongo"}, **hourly)
    result = run_pipeline(config, db=mongo_db, settings=settings, export=False)
    assert len(result.market) == 2 * 72
    assert len(result.signals) > 4
    pd.testing.assert_frame_equal(result.signals, _generated_signals(tmp_path, **hourly))


def test_configured_weights_size_the_sleeves(tmp_path):
    weights = {"BTC/USDT": 0.5, "BINANCE:ETHUSDT": 0.3, "SOL/USDT": 0.2}
    config = make_config(tmp_path, backtest={"fee": 0.0, "weights": weights})
    result = run_pipeline(config, export=False)
    assert result.backtest.weights.to_dict() == {
        "BINANCE:BTCUSDT": 0.5, "BINANCE:ETHUSDT": 0.3, "BINANCE:SOLUSDT": 0.2}
    first = result.backtest.equity_by_symbol.iloc[0]
    assert first.to_dict() == pytest.approx({"BINANCE:BTCUSDT": 5000.0,
                                             "BINANCE:ETHUSDT": 3000.0,
                                             "BINANCE:SOLUSDT": 2000.0})


def test_the_futures_pipeline_shorts_levers_stops_and_exports_it(mongo_db, settings, tmp_path):
    """configs/pipeline.futures.yaml: a long/short rank book on perpetuals, end to end."""
    from pathlib import Path

    from research.pipeline import load_config

    shipped = load_config(Path(__file__).resolve().parents[2] / "configs"
                          / "pipeline.futures.yaml")
    config = make_config(tmp_path, **{
        **shipped.model_dump(mode="json", exclude={"report"}),
        "end": "2025-06-30", "export": {"strategy_id": "fut_pipe", "version": 1}})
    result = run_pipeline(config, db=mongo_db, settings=settings)

    assert result.positions["position"].eq(-1).any()  # the decision rule took shorts
    trades = result.backtest.trades
    assert set(trades["side"]) == {-1, 1}
    assert trades["leverage"].eq(2.0).all()  # the signals' leverage, under max_leverage 3
    assert "stop_loss" in set(trades["exit_reason"])  # the 6 % stop fired somewhere
    stops = trades[trades["exit_reason"] == "stop_loss"]
    moved = (stops["exit_price"] / stops["entry_price"] - 1) * -stops["side"]
    assert (moved >= 0.06 - 1e-9).all()  # a stop is at least 6 % against the trade

    stored = _stored(mongo_db, "fut_pipe")
    assert result.export.inserted == len(stored) == len(result.signals)
    assert result.export.rejected == 0
    shorts = [d for d in stored if d.get("action") == "enter_short"]
    assert shorts and all(d["pair"].endswith(":USDT") and d["weight"] < 0
                          and d["leverage"] == 2.0 and d["stop_loss"] == 0.06 for d in shorts)
    flat = [d for d in stored if d.get("weight") == 0]
    assert flat and all("leverage" not in d and "stop_loss" not in d for d in flat)
