"""Signal frames -> the positions the research backtest takes, by the bot's own rule.

There is one decision rule in the project: :func:`signal_export.consumer.matching.match_signals`
with :class:`~signal_export.consumer.matching.DecisionSettings` (the ``ext_signals``
knobs). ``ExternalSignalStrategy`` calls it on Freqtrade's candles; this module
calls it on the research market, per symbol, and turns its enter/exit columns
into the 1/0/NaN "wanted position" that :func:`research.backtest.simulate_long_flat`
fills at the next open, as Freqtrade does; with short signals (``enter_short``,
negative weights) it is -1/0/1 for :func:`research.backtest.simulate_long_short`, and
the entry signal's ``leverage`` (capped by ``max_leverage``, as the bot's
``leverage()``), ``stop_loss`` and ``take_profit`` ride along. Every signal shape (action, weight,
score), off-grid times, ``valid_until``, several strategy ids with a priority
order, tolerance, staleness, confirmation, min-hold and cooldown are therefore
decided identically on both sides.

The end of the data is treated as Freqtrade's backtesting treats it: no entry
fills on the final candle, and a position still open is closed at the open of
the final candle (Freqtrade's ``force_exit``). So the research trade list and
``freqtrade backtesting``'s trade list are the same trades, open ones included.
Not a backtest: fills, fees and equity are :mod:`research.backtest`'s business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from signal_export.consumer.matching import (
    DEFAULT_STOPLOSS,
    RISK_FIELDS,
    DecisionSettings,
    match_signals,
)
from signal_export.consumer.normalise import empty_signal_frame
from signal_export.contract import symbol_to_pair


@dataclass
class Decisions:
    """What the decision rule made of a signal frame on the market's bars.

    ``positions``: tidy ``datetime, symbol, position, enter_tag`` (position 1/0 on
    decided bars, -1 for a short, NaN = no new decision; ``enter_tag`` is the tag
    Freqtrade shows as the trade's ``enter_tag``), and ``leverage``, ``stop_loss``,
    ``take_profit`` on entry bars when the signals carry risk fields or shorts
    (:attr:`sided`). ``counts``: the rule's outcome counts over all
    symbols (``matched``, ``stale``, ``expired``, ``no_action``, ``superseded``,
    ``unmatched``, ``pending``, ``deduped``, ``debounced``, ``unknown_pair``,
    ``other_timeframe``, ``other_strategy``), the same buckets the bot reports.
    """

    positions: pd.DataFrame
    counts: Counter = field(default_factory=Counter)

    @property
    def sided(self) -> bool:
        """Shorts or risk fields: the long/short (futures) simulation is the one to run."""
        return "leverage" in self.positions.columns


def matcher_frame(signals: pd.DataFrame) -> pd.DataFrame:
    """A contract-shaped signal frame in the matcher's typed form (what the bot reads back).

    ``pair`` comes from ``pair`` or the contract's symbol mapping; an unset
    ``version`` is 1, the contract's default, which is what the store holds.
    """
    if signals.empty:
        return empty_signal_frame()
    pair = signals["pair"] if "pair" in signals else pd.Series(None, index=signals.index)
    missing = pair.isna()
    if missing.any():
        pair = pair.astype(object).copy()
        pair[missing] = signals.loc[missing, "symbol"].map(symbol_to_pair)

    def column(name: str, dtype: str) -> pd.Series:
        if name in signals:
            return signals[name].astype(dtype)
        return pd.Series(np.nan, index=signals.index, dtype=dtype)

    action = signals["action"] if "action" in signals else pd.Series(None, index=signals.index)
    version = column("version", "Float64").fillna(1).astype("int64")
    valid_until = (pd.to_datetime(signals["valid_until"], utc=True) if "valid_until" in signals
                   else pd.Series(pd.NaT, index=signals.index, dtype="datetime64[ms, UTC]"))
    risk = {name: column(name, "float64").to_numpy() for name in RISK_FIELDS
            if name in signals}
    return pd.DataFrame({
        "pair": pair.astype(object).to_numpy(),
        "strategy_id": signals["strategy_id"].astype(object).to_numpy(),
        "ts": pd.to_datetime(signals["ts"], utc=True).astype("datetime64[ms, UTC]").array,
        "valid_until": valid_until.astype("datetime64[ms, UTC]").array,
        "action": action.astype(object).where(action.notna(), None).to_numpy(),
        "score": column("score", "float64").to_numpy(),
        "weight": column("weight", "float64").to_numpy(),
        "version": version.to_numpy(),
        **risk,
    })


def decide_positions(
    signals: pd.DataFrame,
    market: pd.DataFrame,
    *,
    timeframe: str,
    settings: DecisionSettings | None = None,
    strategy_ids: Sequence[str] | None = None,
    stoploss: float = DEFAULT_STOPLOSS,
) -> Decisions:
    """Positions per (symbol, bar) decided by the bot's rule, with Freqtrade's end-of-data rules.

    ``signals``: contract-shaped rows (any strategy ids and timeframes; as the bot,
    only ``timeframe`` and ``strategy_ids`` are read; ``strategy_ids`` order is the
    priority order, ``None`` = every id, ranked by name). ``market``: tidy candles
    with ``datetime`` (bar open, UTC) and ``symbol``; the decision at bar ``t`` is
    filled by the backtest at the open of ``t + 1``. ``stoploss``: Freqtrade's ``stoploss``
    (config or strategy), the stop of a futures entry whose signal has none: at
    ``|stoploss| / leverage`` from the entry, as Freqtrade places it.
    """
    settings = settings or DecisionSettings()
    ids = tuple(strategy_ids) if strategy_ids is not None else ()
    rules = settings.match_rules(timeframe, ids)
    grid = market[["datetime", "symbol"]].astype({"datetime": "datetime64[ns, UTC]"})
    grid = grid.sort_values(["symbol", "datetime"], ignore_index=True)
    counts: Counter = Counter()

    rows = signals
    if not rows.empty and "timeframe" in rows:
        other_tf = rows["timeframe"] != timeframe
        counts["other_timeframe"] += int(other_tf.sum())
        rows = rows[~other_tf]
    if not rows.empty and strategy_ids is not None:
        other_id = ~rows["strategy_id"].isin(ids)
        counts["other_strategy"] += int(other_id.sum())
        rows = rows[~other_id]
    typed = matcher_frame(rows)
    by_pair = dict(tuple(typed.groupby("pair", sort=False))) if len(typed) else {}

    sided = bool(any(name in typed.columns for name in RISK_FIELDS) or (
        typed["action"].isin(("enter_short", "exit_short")).any()
        | (typed["weight"] < 0).any()))
    symbols = grid["symbol"].unique().tolist()
    pairs = {s: symbol_to_pair(s) for s in symbols}
    known = set(pairs.values())
    counts["unknown_pair"] += sum(len(g) for p, g in by_pair.items() if p not in known)
    parts = []
    for symbol, dates in grid.groupby("symbol", sort=False)["datetime"]:
        candles = pd.DataFrame({"date": dates.array})
        got = by_pair.get(pairs[symbol])
        result = match_signals(candles, got.reset_index(drop=True) if got is not None else None,
                               rules)
        counts.update(result.counts)
        parts.append(_positions(result.frame, dates, symbol, settings, sided, stoploss))
    if not parts:
        empty = grid.assign(position=np.nan, enter_tag=None)
        if sided:
            empty = empty.assign(**dict.fromkeys(RISK_FIELDS, np.nan))
        return Decisions(empty, counts)
    positions = pd.concat(parts, ignore_index=True)
    return Decisions(positions, +counts)


def _positions(frame: pd.DataFrame, dates: pd.Series, symbol: str,
               settings: DecisionSettings, sided: bool, stoploss: float) -> pd.DataFrame:
    """One symbol's matcher columns -> wanted side per bar (and the entry's risk values)."""
    def flag(name: str) -> np.ndarray:
        return frame[name].to_numpy() == 1 if name in frame else np.zeros(len(frame), bool)

    enter, enter_s = flag("enter_long"), flag("enter_short")
    exits = flag("exit_long") | flag("exit_short")  # the rule exits the held side only
    position = np.where(enter, 1.0, np.where(enter_s, -1.0, np.where(exits, 0.0, np.nan)))
    if len(position) >= 2:
        # Freqtrade: no entry fills on the last candle; an open trade is force-exited at
        # its open. Both are "flat from the last open on".
        position[-2] = 0.0
    entries = enter | enter_s
    out = {"datetime": dates.array, "symbol": symbol, "position": position,
           "enter_tag": np.where(entries, frame["enter_tag"].to_numpy(), None)}
    if sided:
        def risk(name: str) -> np.ndarray:
            col = "ext_" + name
            return frame[col].to_numpy(dtype=float) if col in frame else np.full(len(frame),
                                                                                 np.nan)

        leverage = settings.cap_leverage(risk("leverage"))
        stop = risk("stop_loss")
        stop = np.where(np.isnan(stop), abs(stoploss) / leverage, stop)
        out["leverage"] = np.where(entries, leverage, np.nan)
        out["stop_loss"] = np.where(entries, stop, np.nan)
        out["take_profit"] = np.where(entries, risk("take_profit"), np.nan)
    return pd.DataFrame(out)
