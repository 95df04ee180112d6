"""Signal frames -> positions by the bot's own rule (signal_export.consumer.matching).

Every shape (action, weight, score band), the end-of-data rules Freqtrade uses,
and the outcome counts; the Freqtrade side of the same rule is proven by
tests/strategy/test_decision_parity.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.pipeline import decide_positions
from research.signals import signal_frame
from signal_export.consumer.matching import DecisionSettings

T = pd.date_range("2024-01-01", periods=8, freq="1D", tz="UTC")
BTC = "BINANCE:BTCUSDT"


def _market(bars: pd.DatetimeIndex = T) -> pd.DataFrame:
    return pd.DataFrame({"datetime": bars.astype("datetime64[ms, UTC]"), "symbol": BTC,
                         "open": 1.0, "close": 1.0})


def _signals(rows: list[int], **values) -> pd.DataFrame:
    return signal_frame(pd.Series(T[rows]), pd.Series([BTC] * len(rows)), timeframe="1d",
                        strategy_id="s", **values)


def _positions(sig: pd.DataFrame, market: pd.DataFrame | None = None, **settings) -> list:
    got = decide_positions(sig, _market() if market is None else market, timeframe="1d",
                           settings=DecisionSettings(**settings))
    return got.positions["position"].tolist()


def _same(got: list, want: list) -> bool:
    return np.array_equal(np.array(got, dtype=float), np.array(want, dtype=float),
                          equal_nan=True)


N = np.nan


def test_actions_decide_on_their_bars_and_the_last_open_is_flat():
    got = _positions(_signals([1, 3], action=["enter_long", "exit_long"]))
    assert _same(got, [N, 1, N, 0, N, N, 0, N])


def test_weights_enter_above_zero_and_exit_at_zero():
    got = _positions(_signals([0, 2], weight=[0.5, 0.0]))
    assert _same(got, [1, N, 0, N, N, N, 0, N])


def test_scores_use_the_bots_enter_exit_band():
    sig = _signals([0, 1, 2, 3], score=[0.9, 0.5, 0.2, 0.65])
    assert _same(_positions(sig), [1, N, 0, 1, N, N, 0, N])  # defaults 0.6 / 0.4
    assert _same(_positions(sig, enter_score=0.95, exit_score=0.3), [N, N, 0, N, N, N, 0, N])


def test_no_entry_fills_on_the_final_candle_and_an_open_position_closes_at_its_open():
    """Regression (issue 16, item 3): Freqtrade never opens on the last candle and
    force-exits open trades at the last candle's open; research does the same."""
    got = _positions(_signals([6], action=["enter_long"]))  # fill would be the last bar
    assert _same(got, [N, N, N, N, N, N, 0, N])
    held = _positions(_signals([2], action=["enter_long"]))
    assert _same(held, [N, N, 1, N, N, N, 0, N])


def test_an_off_grid_signal_acts_on_the_next_bar_never_an_earlier_one():
    """Regression (issue 16, item 2): 08:00 on 1d belongs to the next day's row."""
    sig = pd.DataFrame({"ts": [T[2] + pd.Timedelta(hours=8)], "timeframe": "1d",
                        "symbol": BTC, "pair": "BTC/USDT", "strategy_id": "s",
                        "action": ["enter_long"], "version": 1})
    assert _same(_positions(sig), [N, N, N, 1, N, N, 0, N])


def test_knobs_of_the_bot_apply_confirm_and_cooldown():
    sig = _signals([0, 1, 2, 3, 4], action=["enter_long", "enter_long", "exit_long",
                                            "enter_long", "enter_long"])
    assert _same(_positions(sig, confirm_n=2), [N, 1, 0, N, 1, N, 0, N])
    assert _same(_positions(sig, cooldown_bars=2), [1, N, 0, N, 1, N, 0, N])


def test_counts_use_the_bots_buckets():
    sig = pd.concat([
        _signals([0, 1], score=[0.5, 0.9]),
        _signals([2], action=["enter_long"]).assign(symbol="BINANCE:ETHUSDT", pair="ETH/USDT"),
        _signals([3], action=["exit_long"]).assign(timeframe="1h"),
    ], ignore_index=True)
    got = decide_positions(sig, _market(), timeframe="1d")
    assert got.counts == {"no_action": 1, "matched": 1, "unknown_pair": 1, "other_timeframe": 1}


def test_a_signal_in_a_data_gap_is_counted_unmatched_as_the_bot_does():
    market = _market(T[[0, 1, 3, 4, 5, 6, 7]])  # bar 2 is missing
    got = decide_positions(_signals([2], weight=[1.0]), market, timeframe="1d")
    assert got.counts["unmatched"] == 1 and not (got.positions["position"] == 1).any()
    wider = decide_positions(_signals([2], weight=[1.0]), market, timeframe="1d",
                             settings=DecisionSettings(tolerance_bars=2))
    assert wider.positions.loc[wider.positions["position"] == 1, "datetime"].tolist() == [T[3]]


def test_the_research_config_rejects_the_old_second_rule():
    from research.pipeline.config import BacktestConfig

    with pytest.raises(ValueError, match="ext_signals.enter_score"):
        BacktestConfig(score_threshold=0.5)


# --- futures: shorts, flips, risk fields ---------------------------------------------------

FUT = "BINANCE:BTCUSDT.USDT"  # BTC/USDT:USDT


def _futures_signals(rows: list[int], **columns) -> pd.DataFrame:
    return pd.DataFrame({"ts": T[rows], "timeframe": "1d", "symbol": FUT,
                         "pair": "BTC/USDT:USDT", "strategy_id": "s", **columns})


def _decide(sig: pd.DataFrame, **settings):
    return decide_positions(sig, _market().assign(symbol=FUT), timeframe="1d",
                            settings=DecisionSettings(**settings))


def test_short_actions_flip_and_exit_by_the_bots_rule():
    sig = _futures_signals([1, 3, 4, 5], action=["enter_long", "enter_short", "exit_long",
                                                 "exit_short"])
    got = _decide(sig)
    assert got.sided
    # the flip is the short's entry; exit_long while short is deduped, as the bot does it
    assert _same(got.positions["position"].tolist(), [N, 1, N, -1, N, 0, 0, N])
    assert got.counts["deduped"] == 1


def test_signed_weights_short_below_zero_and_zero_exits_either_side():
    got = _decide(_futures_signals([0, 2, 4], weight=[-0.5, 0.3, 0.0]))
    assert _same(got.positions["position"].tolist(), [-1, N, 1, N, 0, N, 0, N])


def test_risk_values_ride_on_the_entry_bar_and_leverage_is_capped_like_the_bots():
    sig = _futures_signals([1, 3, 5], action=["enter_short", "exit_short", "enter_long"],
                           leverage=[5.0, np.nan, np.nan], stop_loss=[0.05, np.nan, 0.1],
                           take_profit=[np.nan, np.nan, 0.2])
    pos = _decide(sig, max_leverage=3).positions
    assert _same(pos["leverage"].tolist(), [N, 3, N, N, N, 1, N, N])  # capped; none = 1
    assert _same(pos["stop_loss"].tolist(), [N, 0.05, N, N, N, 0.1, N, N])
    # no stop in the signal: Freqtrade's stoploss (-0.99 of the margin) at the leverage
    no_stop = _decide(sig.assign(stop_loss=[np.nan, np.nan, 0.1]), max_leverage=3).positions
    assert _same(no_stop["stop_loss"].tolist(), [N, 0.33, N, N, N, 0.1, N, N])
    assert _same(pos["take_profit"].tolist(), [N, N, N, N, N, 0.2, N, N])
    assert _same(_decide(sig).positions["leverage"].tolist(), [N, 1, N, N, N, 1, N, N])


def test_long_only_signals_keep_the_long_flat_frame():
    got = decide_positions(_signals([1, 3], action=["enter_long", "exit_long"]), _market(),
                           timeframe="1d")
    assert not got.sided
    assert list(got.positions.columns) == ["datetime", "symbol", "position", "enter_tag"]
