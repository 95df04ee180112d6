"""Specification of the signal -> candle matching rules (pure, no I/O)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signal_export.consumer.matching import MatchRules, make_tag, match_signals, parse_tag
from signal_export.consumer.normalise import normalise_signals
from signal_export.consumer.stats import WarnOnce

H = timedelta(hours=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def candles(n: int = 10, unit: str = "ms", drop: tuple[int, ...] = ()) -> pd.DataFrame:
    dates = pd.date_range(T0, periods=n, freq="1h", tz="UTC").astype(f"datetime64[{unit}, UTC]")
    frame = pd.DataFrame({"date": dates, "open": np.arange(n, dtype=float) + 100.0})
    return frame.drop(index=list(drop)).reset_index(drop=True)


def sig(ts: datetime, *, pair: str = "BTC/USDT", sid: str = "s1", **fields) -> dict:
    return {"pair": pair, "strategy_id": sid, "ts": ts, "timeframe": "1h", **fields}


def run(docs: list[dict], rules: MatchRules | None = None, frame: pd.DataFrame | None = None,
        now: datetime | None = None):
    rules = rules or MatchRules(timeframe="1h")
    frame = candles() if frame is None else frame
    signals = normalise_signals(docs, pairs={"BTC/USDT"})
    return match_signals(frame, signals, rules, now=now), frame


def rows(result, col: str = "enter_long") -> list[int]:
    return np.flatnonzero(result.frame[col].to_numpy()).tolist()


def test_on_grid_signal_applies_to_its_own_row():
    res, _ = run([sig(T0 + 3 * H, action="enter_long", version=2)])
    assert rows(res) == [3]
    assert res.frame["enter_tag"].iloc[3] == "ext:s1:v2"
    assert res.counts["matched"] == 1


def test_off_grid_signal_applies_to_next_row_never_earlier():
    res, _ = run([sig(T0 + 3 * H + timedelta(minutes=40), action="enter_long")])
    assert rows(res) == [4]


def test_signal_older_than_tolerance_is_unmatched_when_its_row_is_missing():
    # row 3 is missing from the candles (data gap); ts=3h would need row 4 with 4h-3h < 1 bar: no
    res, _ = run([sig(T0 + 3 * H, action="enter_long")], frame=candles(drop=(3,)))
    assert rows(res) == []
    assert res.counts["unmatched"] == 1


def test_wider_tolerance_bridges_a_gap():
    rules = MatchRules(timeframe="1h", tolerance_bars=2)
    res, frame = run([sig(T0 + 3 * H, action="enter_long")], rules, frame=candles(drop=(3,)))
    assert frame["date"].iloc[rows(res)[0]] == pd.Timestamp(T0 + 4 * H)


@pytest.mark.parametrize("unit", ["us", "ns", "s"])
def test_candle_date_units_other_than_ms_are_accepted(unit):
    res, _ = run([sig(T0 + 2 * H, action="enter_long")], frame=candles(unit=unit))
    assert rows(res) == [2]


def test_signal_after_last_row_is_pending_not_used():
    res, _ = run([sig(T0 + 10 * H, action="enter_long")])
    assert rows(res) == []
    assert res.counts["pending"] == 1


def test_stale_signal_is_ignored_and_counted():
    # with a 5-bar tolerance a 3h-old signal could match row 6 across a gap, but max delay is 2 bars
    rules = MatchRules(timeframe="1h", tolerance_bars=5, max_delay=2 * H)
    res, _ = run([sig(T0 + 3 * H, action="enter_long")], rules, frame=candles(drop=(3, 4, 5)))
    assert rows(res) == []
    assert res.counts["stale"] == 1


def test_live_staleness_uses_now_for_the_last_row():
    rules = MatchRules(timeframe="1h", max_delay=3 * H)
    last = T0 + 9 * H
    fresh, _ = run([sig(last, action="enter_long")], rules, now=last + H + timedelta(minutes=30))
    late, _ = run([sig(last, action="enter_long")], rules, now=last + H + 3 * H + timedelta(1e-3))
    assert rows(fresh) == [9]
    assert rows(late) == [] and late.counts["stale"] == 1


def test_valid_until_must_be_after_the_rows_close():
    # row 3 closes (and would fill) at 4h
    just_after = T0 + 4 * H + timedelta(seconds=1)
    ok, _ = run([sig(T0 + 3 * H, action="enter_long", valid_until=just_after)])
    gone, _ = run([sig(T0 + 3 * H, action="enter_long", valid_until=T0 + 4 * H)])
    assert rows(ok) == [3]
    assert rows(gone) == [] and gone.counts["expired"] == 1


def test_score_maps_through_thresholds():
    rules = MatchRules(timeframe="1h", enter_score=0.7, exit_score=0.3)
    docs = [sig(T0 + H, score=0.8), sig(T0 + 2 * H, score=0.5), sig(T0 + 3 * H, score=0.3)]
    res, _ = run(docs, rules)
    assert rows(res) == [1] and rows(res, "exit_long") == [3]
    assert res.counts["no_action"] == 1


def test_weight_positive_enters_with_weight_and_zero_exits():
    res, _ = run([sig(T0 + H, weight=0.25, version=3), sig(T0 + 4 * H, weight=0.0)])
    assert rows(res) == [1] and rows(res, "exit_long") == [4]
    assert res.frame["ext_weight"].iloc[1] == 0.25
    assert parse_tag(res.frame["enter_tag"].iloc[1]) == ("s1", 3, 0.25)


def test_action_takes_precedence_over_score():
    res, _ = run([sig(T0 + H, action="exit_long", score=0.99)])
    assert rows(res, "exit_long") == [1] and rows(res) == []


def test_repeated_identical_actions_collapse():
    docs = [sig(T0 + i * H, action="enter_long") for i in (1, 2, 3)] + [
        sig(T0 + 5 * H, action="exit_long"), sig(T0 + 6 * H, action="exit_long")]
    res, _ = run(docs)
    assert rows(res) == [1] and rows(res, "exit_long") == [5]
    assert res.counts["deduped"] == 3


def test_min_hold_drops_early_exit_and_honours_a_later_one():
    rules = MatchRules(timeframe="1h", min_hold_bars=3)
    docs = [sig(T0 + H, action="enter_long"), sig(T0 + 2 * H, action="exit_long"),
            sig(T0 + 5 * H, action="exit_long")]
    res, _ = run(docs, rules)
    assert rows(res) == [1] and rows(res, "exit_long") == [5]
    assert res.counts["debounced"] == 1


def test_cooldown_blocks_reentry_right_after_exit():
    rules = MatchRules(timeframe="1h", cooldown_bars=3)
    docs = [sig(T0 + H, action="enter_long"), sig(T0 + 2 * H, action="exit_long"),
            sig(T0 + 3 * H, action="enter_long"), sig(T0 + 5 * H, action="enter_long")]
    res, _ = run(docs, rules)
    assert rows(res) == [1, 5] and rows(res, "exit_long") == [2]


def test_confirmation_needs_n_consecutive_enter_rows():
    rules = MatchRules(timeframe="1h", confirm_n=2)
    docs = [sig(T0 + H, action="enter_long"), sig(T0 + 3 * H, action="enter_long"),
            sig(T0 + 4 * H, action="enter_long"), sig(T0 + 5 * H, action="enter_long")]
    res, _ = run(docs, rules)
    assert rows(res) == [4]


def test_priority_strategy_wins_a_row_and_unlisted_ids_rank_last():
    rules = MatchRules(timeframe="1h", strategy_priority=("risk", "model"))
    docs = [sig(T0 + 2 * H, sid="model", action="enter_long"),
            sig(T0 + 2 * H, sid="risk", action="exit_long"),
            sig(T0 + 4 * H, sid="zzz", action="exit_long"),
            sig(T0 + 4 * H, sid="model", action="enter_long")]
    res, _ = run(docs, rules)
    assert rows(res, "exit_long") == [2] and rows(res) == [4]
    assert res.frame["exit_tag"].iloc[2].startswith("ext:risk:")
    assert res.counts["superseded"] == 2


def test_latest_signal_in_the_window_wins_within_one_strategy():
    res, _ = run([sig(T0 + 2 * H + timedelta(minutes=10), action="enter_long"),
                  sig(T0 + 2 * H + timedelta(minutes=50), action="exit_long")])
    assert rows(res, "exit_long") == [3] and rows(res) == []


def test_malformed_documents_are_counted_and_warned_once_never_raise(caplog):
    naive = datetime(2026, 1, 1, 3)
    docs = [
        sig(T0 + H, action="enter_long"),
        {"pair": "BTC/USDT", "ts": T0 + H, "action": "enter_long"},  # no strategy_id
        sig(naive, action="enter_long"),
        sig(T0 + H, score=float("nan")),
        sig(T0 + H, action="buy"),
        sig(T0 + H, weight=1.5),
        sig(T0 + H),
        sig("2026-01-01", action="enter_long"),
        sig(T0 + H, action="enter_long", pair="DOGE/USDT"),
        sig(T0 + H, action="enter_long", valid_until=T0),
        sig(T0 + 2 * H, action="enter_long", version=True),
        "not a document",
    ]
    counts: dict = {}
    frame = normalise_signals(docs, pairs={"BTC/USDT"}, counts=counts)
    assert len(frame) == 1
    assert counts["BTC/USDT"]["malformed"] == 9 and counts["DOGE/USDT"]["unknown_pair"] == 1
    assert counts["?"]["malformed"] == 1
    frame2 = normalise_signals(docs, pairs={"BTC/USDT"}, counts={})
    assert len(frame2) == 1


def test_each_malformed_reason_is_warned_once_per_reader(caplog):
    warn = WarnOnce(logging.getLogger("test.warnonce"))
    docs = [sig(T0 + H, action="buy"), sig(T0 + 2 * H, action="sell")]
    with caplog.at_level(logging.WARNING, logger="test.warnonce"):
        for _ in range(5):  # five bot loops reading the same bad documents
            normalise_signals(docs, pairs={"BTC/USDT"}, warn=warn)
    assert len(caplog.records) == 1 and "enter_long/exit_long" in caplog.records[0].getMessage()


def test_tag_round_trip_with_colons_in_strategy_id():
    assert parse_tag(make_tag("team:alpha", 7, 0.5)) == ("team:alpha", 7, 0.5)
    assert parse_tag(make_tag("a", 1)) == ("a", 1, None)
    assert parse_tag("something-else") is None


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=-3 * 3600, max_value=14 * 3600), min_size=1,
                     max_size=12),
    tolerance=st.integers(min_value=1, max_value=4),
    dropped=st.sets(st.integers(min_value=0, max_value=9), max_size=4),
)
def test_property_signal_never_maps_to_a_row_before_its_ts(offsets, tolerance, dropped):
    frame = candles(drop=tuple(sorted(dropped)))
    if frame.empty:
        return
    docs = [sig(T0 + timedelta(seconds=o), action="enter_long" if i % 2 == 0 else "exit_long",
                version=i + 1) for i, o in enumerate(offsets)]
    rules = MatchRules(timeframe="1h", tolerance_bars=tolerance, max_delay=100 * H)
    res = match_signals(frame, normalise_signals(docs), rules)
    for col in ("enter_long", "exit_long"):
        for r in np.flatnonzero(res.frame[col].to_numpy()):
            tag = res.frame[col.replace("_long", "_tag")].iloc[r]
            version = parse_tag(tag)[1]
            ts = docs[version - 1]["ts"]
            row_t = frame["date"].iloc[r]
            assert ts <= row_t, "signal used on a row earlier than its ts (lookahead)"
            assert row_t - ts < tolerance * H
            # and it is the first such row
            earlier = frame["date"][(frame["date"] >= ts) & (frame["date"] < row_t)]
            assert earlier.empty


@settings(max_examples=60, deadline=None)
@given(offsets=st.lists(st.integers(min_value=0, max_value=9 * 3600), min_size=1, max_size=8,
                        unique_by=lambda s: -(-s // 3600)),
       tolerance=st.integers(min_value=1, max_value=3),
       max_delay=st.sampled_from([0.25, 0.5, 1.0, 3.0]),
       dropped=st.sets(st.integers(min_value=0, max_value=9), max_size=3),
       live=st.booleans())
def test_property_ceil_aligned_signals_decide_exactly_like_raw_ones(offsets, tolerance, max_delay,
                                                                  dropped, live):
    """Regression (issue 16, item 2): storing ``bar(ts)`` (align="ceil") changes nothing.

    Raw off-grid times and their ceiled bar opens give identical columns and counts,
    for any tolerance, max delay (below one bar too), data gaps, backtest and live."""
    rules = MatchRules(timeframe="1h", tolerance_bars=tolerance, max_delay=max_delay * H)
    frame = candles(drop=tuple(dropped))
    now = T0 + 10 * H + timedelta(minutes=7) if live else None
    raw = [sig(T0 + timedelta(seconds=s), action=("enter_long", "exit_long")[i % 2])
           for i, s in enumerate(offsets)]
    ceiled = [dict(d, ts=T0 + H * -(-(d["ts"] - T0) // H)) for d in raw]
    got_raw, _ = run(raw, rules, frame, now=now)
    got_ceil, _ = run(ceiled, rules, frame, now=now)
    pd.testing.assert_frame_equal(got_raw.frame, got_ceil.frame)
    assert got_raw.counts == got_ceil.counts


def test_a_1m_signal_at_00_10_37_fills_at_00_12_stored_raw_or_aligned():
    """The issue's example: raw 00:10:37 and align='ceil' (00:11) both act on row 00:11."""
    from signal_export.contract import SignalDocument

    t = datetime(2026, 1, 1, 0, 10, 37, tzinfo=UTC)
    doc = SignalDocument.model_validate(
        {"ts": t, "timeframe": "1m", "pair": "BTC/USDT", "strategy_id": "s1",
         "action": "enter_long"}, context={"align": "ceil", "now": t + timedelta(hours=1)})
    assert doc.ts == datetime(2026, 1, 1, 0, 11, tzinfo=UTC)
    frame = pd.DataFrame({"date": pd.date_range("2026-01-01", periods=20, freq="1min",
                                                tz="UTC").astype("datetime64[ms, UTC]")})
    for ts in (t, doc.ts):
        res = match_signals(frame, normalise_signals([sig(ts, timeframe="1m",
                                                          action="enter_long")]),
                            MatchRules(timeframe="1m"))
        assert rows(res) == [11]  # row 00:11, Freqtrade fills at the 00:12 open
