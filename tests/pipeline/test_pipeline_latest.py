"""The scheduler's newest-bar run equals the last rows of a full run, from short history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pipeline_data import make_config

from research.factors import history_length
from research.pipeline import (
    factor_frame,
    generate_signals,
    load_market,
    newest_closed_bar,
    run_latest,
)
from signal_export.contract import SIGNALS_COLLECTION
from signal_export.settings import Settings

LAST_BARS = [pd.Timestamp(d, tz="UTC") for d in ("2024-12-29", "2024-12-30", "2024-12-31")]
FULL = {"start": "2022-06-01", "end": "2024-12-31"}


def _full_run_signals(config) -> pd.DataFrame:
    """The signals of a full run over the config's range (run_pipeline's steps, no report)."""
    return generate_signals(config, factor_frame(config, load_market(config)))


def _rows_at(signals: pd.DataFrame, bar: pd.Timestamp) -> pd.DataFrame:
    rows = signals[signals["ts"] == bar].sort_values("symbol", ignore_index=True)
    return rows.astype({"ts": "datetime64[ns, UTC]"})


def _assert_same_signals(latest: pd.DataFrame, full: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(latest.sort_values("symbol", ignore_index=True)
                                  .astype({"ts": "datetime64[ns, UTC]"}), full,
                                  check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("generator", "context"), [
    ({"type": "rank", "params": {"factor": "rsi_14", "top_n": 1, "actions": False}}, 1),
    ({"type": "threshold", "params": {"enter": "rsi_14 > 50 and close > sma_20",
                                      "mode": "events"}}, 1),
    ({"type": "rank", "params": {"factor": "rsi_14", "top_n": 1, "actions": True}}, 2),
], ids=["rank", "threshold-events", "rank-actions"])
def test_newest_bar_signals_equal_the_last_rows_of_a_full_run(tmp_path, generator, context):
    config = make_config(tmp_path, generator=generator, latest={"context_bars": context},
                         **FULL)
    full = _full_run_signals(config)
    compared = 0
    for bar in LAST_BARS:
        latest = run_latest(config, bar=bar, export=False)
        assert latest.bar == bar
        assert len(latest.factors) == context * len(config.universe)  # only the newest bars
        expected = _rows_at(full, bar)
        _assert_same_signals(latest.signals, expected)
        compared += len(expected)
    assert compared > 0


def test_stateful_generator_matches_with_enough_context(tmp_path):
    """A state-mode threshold rule depends on earlier bars: context_bars covers that memory."""
    config = make_config(tmp_path, latest={"context_bars": 120}, **FULL)
    full = _full_run_signals(config)
    window = full[full["ts"] > pd.Timestamp("2024-09-01", tz="UTC")]
    assert len(window) > 3
    for bar in sorted(window["ts"].unique())[-3:]:
        latest = run_latest(config, bar=bar, export=False)
        assert len(latest.signals) >= 1
        _assert_same_signals(latest.signals, _rows_at(full, bar))


def test_latest_reads_only_the_history_it_needs(tmp_path):
    config = make_config(tmp_path, **FULL)
    bar = LAST_BARS[-1]
    latest = run_latest(config, bar=bar, export=False)
    needed = history_length(config.factors)
    assert needed < 800  # far less than the ~940 bars of the full range
    assert set(latest.factors["datetime"]) == {bar}


def test_newest_closed_bar_is_the_bar_that_closed_before_now():
    now = pd.Timestamp("2024-05-03 00:00:30", tz="UTC")
    assert newest_closed_bar(now, "1d") == pd.Timestamp("2024-05-02", tz="UTC")
    assert newest_closed_bar(now, "1m") == pd.Timestamp("2024-05-02 23:59", tz="UTC")


def test_latest_export_is_idempotent(mongo_client, mongo_db, settings, tmp_path):
    config = make_config(tmp_path, generator={
        "type": "rank", "params": {"factor": "rsi_14", "top_n": 2}}, **FULL)
    now = pd.Timestamp("2025-01-01 00:00:05", tz="UTC")
    first = run_latest(config, now=now, db=mongo_db, settings=settings)
    assert first.bar == LAST_BARS[-1]
    assert first.export.inserted == len(first.signals) == 3
    # the scheduler's way: its own long-lived client, databases named by the settings
    scheduler_settings = Settings(db=mongo_db.name, market_db=mongo_db.name)
    again = run_latest(config, now=now, client=mongo_client, settings=scheduler_settings)
    assert (again.export.inserted, again.export.updated, again.export.unchanged) == (0, 0, 3)
    assert again.export.target == f"{mongo_db.name}.{SIGNALS_COLLECTION}"
    # the caller's client is still open
    assert mongo_db[SIGNALS_COLLECTION].count_documents({"ts": LAST_BARS[-1]}) == 3


def test_the_1m_example_config_is_exact_for_its_newest_bars():
    from research.pipeline import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "pipeline.1m.yaml")
    full = _full_run_signals(config)
    last = sorted(full["ts"].unique())[-2:]
    for bar in last:
        latest = run_latest(config, bar=bar, export=False)
        _assert_same_signals(latest.signals, _rows_at(full, bar))


def test_a_symbol_without_the_newest_candle_is_reported(mongo_db, settings, tmp_path):
    from research.data.market_store import upsert_candles
    from research.data.synthetic import SyntheticMarket, generate_ohlcv

    config = make_config(tmp_path, data={"kind": "mongo"}, generator={
        "type": "rank", "params": {"factor": "rsi_14", "top_n": 1}}, **FULL)
    market = generate_ohlcv(SyntheticMarket(seed=11, symbols=tuple(config.universe)),
                            pd.Timestamp("2022-06-01", tz="UTC"),
                            pd.Timestamp("2025-01-01", tz="UTC"), "1d")
    late = (market["symbol"] == "BINANCE:SOLUSDT") & (market["datetime"] == LAST_BARS[-1])
    upsert_candles(market[~late], mongo_db, "1d")
    latest = run_latest(config, bar=LAST_BARS[-1], db=mongo_db, settings=settings, export=False)
    assert latest.missing_symbols == ["BINANCE:SOLUSDT"]
    assert sorted(latest.signals["symbol"]) == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]


def test_backfill_of_missed_bars_equals_the_full_run(tmp_path):
    config = make_config(tmp_path, latest={"context_bars": 120}, **FULL)
    full = _full_run_signals(config)
    bar = pd.Timestamp("2024-12-31", tz="UTC")
    latest = run_latest(config, bar=bar, bars=40, export=False)
    expected = full[full["ts"] > bar - pd.Timedelta(days=40)].reset_index(drop=True)
    assert len(expected) >= 2
    pd.testing.assert_frame_equal(latest.signals.astype({"ts": "datetime64[ns, UTC]"}),
                                  expected.astype({"ts": "datetime64[ns, UTC]"}),
                                  check_exact=False, rtol=1e-9, atol=1e-12)
