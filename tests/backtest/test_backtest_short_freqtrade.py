"""simulate_long_short against real ``freqtrade backtesting`` (futures, isolated margin).

Random long/short/flat signals with leverage, stop-losses and take-profits; a small test
strategy applies them the way docs/LONG_SHORT.md describes (entries and exits on the rows
where the wanted side changes, leverage from the signal, the stop set once after the
entry fills, the target as ``custom_roi``), Freqtrade backtests it offline against
the exchange stand-in, and the research backtest must produce the same trades: side,
entry and exit times, prices (1e-9) and exit reasons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from devservers import freqtrade_harness as harness
from devservers.exchange import ExchangeStandIn
from research.backtest import simulate_long_short
from research.data.synthetic import SyntheticMarket, symbol_spec

PAIR = "BTC/USDT:USDT"
BASE = harness.standin_test_config([PAIR], use_order_book=True, dry_run_wallet=100_000)
TIMEOUT = 300

STRATEGY = '''
import json
from pathlib import Path

import pandas as pd
from freqtrade.strategy import IStrategy

SIGNALS = Path(__file__).with_name("signals.json")


class ResearchParityStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1d"
    can_short = True
    minimal_roi = {"0": 100}
    stoploss = -0.99
    use_custom_roi = True
    use_custom_stoploss = True
    startup_candle_count = 0

    def bot_start(self, **kwargs):
        table = pd.DataFrame(json.loads(SIGNALS.read_text()))
        table["date"] = pd.to_datetime(table["date"], utc=True)
        self.table = table.set_index("date")

    def populate_indicators(self, dataframe, metadata):
        t = self.table.reindex(pd.DatetimeIndex(dataframe["date"]))
        wish = t["side"].ffill().fillna(0)
        changed = (wish != wish.shift(1, fill_value=0)).to_numpy()
        start = pd.Series(range(len(wish))).where(changed).ffill().fillna(0).astype(int)
        wish = wish.to_numpy()
        for col in ("leverage", "stop_loss", "take_profit"):
            dataframe["run_" + col] = t[col].to_numpy()[start.to_numpy()]
        dataframe["wish"] = wish
        dataframe["changed"] = changed
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        wish, changed = dataframe["wish"], dataframe["changed"].astype(bool)
        dataframe["enter_long"] = ((wish == 1) & changed).astype(int)
        dataframe["enter_short"] = ((wish == -1) & changed).astype(int)
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        wish, prev = dataframe["wish"], dataframe["wish"].shift(1).fillna(0)
        dataframe["exit_long"] = ((prev == 1) & (wish != 1)).astype(int)
        dataframe["exit_short"] = ((prev == -1) & (wish != -1)).astype(int)
        return dataframe

    def _run_value(self, pair, current_time, col):
        df, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        rows = df[df["date"] < current_time]
        return float(rows[col].iloc[-1])

    def leverage(self, pair, current_time, current_rate, proposed_leverage, max_leverage,
                 entry_tag, side, **kwargs):
        return self._run_value(pair, current_time, "run_leverage")

    def custom_stoploss(self, pair, trade, current_time, current_rate, current_profit,
                        after_fill, **kwargs):
        if not after_fill:
            return None
        sl = self._run_value(pair, trade.open_date_utc, "run_stop_loss")
        side = -1 if trade.is_short else 1
        stop = trade.open_rate * (1 - side * sl)
        return (side * (1 - stop / current_rate)) * trade.leverage

    def custom_roi(self, pair, trade, current_time, trade_duration, entry_tag, side, **kwargs):
        tp = self._run_value(pair, trade.open_date_utc, "run_take_profit")
        sign = -1 if trade.is_short else 1
        return trade.calc_profit_ratio(trade.open_rate * (1 + sign * tp))
'''


def _signals(index: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(index)
    side = rng.choice([-1.0, 0.0, 1.0, np.nan, np.nan, np.nan, np.nan], n)
    return pd.DataFrame({
        "side": side,
        "leverage": rng.choice([1.0, 2.0, 3.0], n),
        "stop_loss": rng.uniform(0.01, 0.06, n).round(4),
        "take_profit": rng.uniform(0.02, 0.10, n).round(4),
    }, index=index)


@pytest.mark.freqtrade
@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
def test_research_backtest_matches_freqtrade_futures_backtesting(tmp_path, seed):
    market = SyntheticMarket(seed=21, symbols=("BTC/USDT",))
    datadir = tmp_path / "data"
    with ExchangeStandIn(market=market, now="2024-09-01T00:05:00Z") as server:
        configs = harness.write_config_layers(tmp_path, base=BASE,
                                              overlay=server.overlay(futures=True))
        argv = harness.download_argv(configs, tmp_path, datadir, "20240101-20240901", "1d")
        done = harness.run_freqtrade(argv, tmp_path, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        from freqtrade.data.history import get_datahandler
        from freqtrade.enums import CandleType

        candles = get_datahandler(datadir, "feather").ohlcv_load(
            PAIR, "1d", candle_type=CandleType.FUTURES, fill_missing=False)
        index = pd.DatetimeIndex(candles["date"]).as_unit("ns")
        signals = _signals(index, seed=seed)
        strategies = tmp_path / "strategies"
        strategies.mkdir(exist_ok=True)
        (strategies / "parity.py").write_text(STRATEGY)
        table = signals.reset_index(names="date")
        table["date"] = table["date"].astype(str)
        (strategies / "signals.json").write_text(table.to_json(orient="records"))
        results = tmp_path / "results"
        results.mkdir(exist_ok=True)
        argv = harness.backtest_argv(configs, tmp_path, datadir, "1d", "20240101-20240901",
                                     results, strategy="ResearchParityStrategy",
                                     strategy_path=strategies)
        done = harness.run_freqtrade(argv, tmp_path, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    from freqtrade.data.btanalysis import load_backtest_data

    ft = load_backtest_data(results).sort_values("open_date").reset_index(drop=True)

    def wide(col: str) -> pd.DataFrame:
        return pd.DataFrame({"A": candles[col].to_numpy()}, index=index)

    def per_bar(col: str) -> pd.DataFrame:
        return pd.DataFrame({"A": signals[col].to_numpy()}, index=index)

    res = simulate_long_short(
        wide("open"), wide("close"), per_bar("side"), timeframe="1d", high=wide("high"),
        low=wide("low"), leverage=per_bar("leverage"), stop_loss=per_bar("stop_loss"),
        take_profit=per_bar("take_profit"), fee=0.001,
        price_decimals=symbol_spec(market, "BINANCE:BTCUSDT").price_decimals)
    ours = res.trades
    closed = ours[~ours["is_open"]].reset_index(drop=True)
    ft_closed = ft[ft["exit_reason"] != "force_exit"].reset_index(drop=True)
    assert len(closed) > 10
    assert set(closed["exit_reason"]) >= {"exit_signal", "stop_loss", "roi"}
    got = pd.DataFrame({
        "side": np.where(ft_closed["is_short"], -1, 1),
        "entry": pd.DatetimeIndex(ft_closed["open_date"]).as_unit("ns"),
        "exit": pd.DatetimeIndex(ft_closed["close_date"]).as_unit("ns"),
        "reason": ft_closed["exit_reason"].to_numpy(),
        "leverage": ft_closed["leverage"].to_numpy(),
    })
    want = pd.DataFrame({
        "side": closed["side"].to_numpy().astype(int),
        "entry": pd.DatetimeIndex(closed["entry_time"]).as_unit("ns"),
        "exit": pd.DatetimeIndex(closed["exit_time"]).as_unit("ns"),
        "reason": closed["exit_reason"].to_numpy(),
        "leverage": closed["leverage"].to_numpy(),
    })
    if len(got) != len(want) or not got.equals(want):
        both = got.merge(want, on="entry", how="outer", suffixes=("_ft", "_ours"),
                         indicator=True)
        pd.set_option("display.width", 250)
        pd.set_option("display.max_rows", 200)
        print(both.to_string())
        print(signals.head(80).to_string())
    pd.testing.assert_frame_equal(got, want)
    np.testing.assert_allclose(ft_closed["open_rate"], closed["entry_price"], rtol=1e-9)
    np.testing.assert_allclose(ft_closed["close_rate"], closed["exit_price"], rtol=1e-9)
