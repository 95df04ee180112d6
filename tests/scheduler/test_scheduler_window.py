"""The windowed job (market window cached between bars) exports exactly what run_latest would."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from scheduler_data import T0, job_spec, pipeline_config

from research.data.market_store import upsert_candles
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.factors import history_length
from research.pipeline import run_latest
from signal_export.contract import SIGNALS_COLLECTION
from signal_export.scheduler import JobRunner
from signal_export.scheduler.window import WindowedJob
from signal_export.store import signals_in_range

MIN = timedelta(minutes=1)
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def _store_candles(db, start, end) -> None:
    market = SyntheticMarket(seed=5, symbols=PAIRS)
    upsert_candles(generate_ohlcv(market, start, end, "1m"), db, "1m")


def _config(tmp_path):
    return pipeline_config(tmp_path, data={"kind": "mongo"},
                           generator={"type": "rank", "params": {"factor": "rsi_14", "top_n": 1,
                                                                 "actions": True}},
                           latest={"context_bars": 2})


def _normal(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["pair", "ts", "action", "score"]].sort_values("pair", ignore_index=True)
    return out.astype({"ts": "datetime64[ms, UTC]", "pair": object}).assign(
        action=out["action"].astype(object).where(out["action"].notna(), None))


def _stored(db, bar):
    return _normal(signals_in_range(db[SIGNALS_COLLECTION], bar, bar, strategy_ids="sched_test"))


def _expected(config, db, bar):
    return _normal(run_latest(config, bar=bar, now=bar + MIN, db=db, export=False).signals)


def _window_bars(config) -> int:
    needed = history_length(config.factors) + config.latest.context_bars - 1
    return needed + max(10, needed // 10)


def test_windowed_runs_read_only_new_bars_and_equal_run_latest(mongo_db, tmp_path, clock):
    config = _config(tmp_path)
    _store_candles(mongo_db, T0 - (_window_bars(config) + 5) * MIN, T0 + 10 * MIN)
    job = WindowedJob(db=mongo_db)
    runner = JobRunner(job_spec(), config, mongo_db, clock=clock, job_fn=job)
    compared = 0
    for i in range(6):
        clock.now = T0 + (i + 1) * MIN + timedelta(seconds=3)
        (record,) = runner.tick()
        assert record.status == "ok", record.error
        stored = _stored(mongo_db, record.bar)
        expected = _expected(config, mongo_db, record.bar)
        pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
        compared += len(expected)
    assert compared == 6 * len(PAIRS)
    assert (job.full_reads, job.partial_reads) == (1, 5)
    # the window stays bounded (history + margin), it does not grow with every bar
    assert job.window["datetime"].nunique() == _window_bars(config)


def test_a_gap_longer_than_the_window_reloads_it(mongo_db, tmp_path):
    config = _config(tmp_path)
    gap = (_window_bars(config) + 5) * MIN
    _store_candles(mongo_db, T0 - gap, T0 + gap + MIN)
    job = WindowedJob(db=mongo_db)
    job(config, pd.Timestamp(T0), T0 + MIN)
    job(config, pd.Timestamp(T0 + gap), T0 + gap + MIN)
    assert (job.full_reads, job.partial_reads) == (2, 0)
    pd.testing.assert_frame_equal(_stored(mongo_db, T0 + gap),
                                  _expected(config, mongo_db, T0 + gap), check_dtype=False)
