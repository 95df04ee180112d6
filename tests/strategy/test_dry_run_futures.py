"""Futures dry-run: a short signal opens a short, the signal's stop-loss closes it.

Real ``freqtrade trade --dry-run`` in futures mode (isolated margin) against the exchange
stand-in (real clock, 1m candles) and the MongoDB dev server. The stand-in's prices are
the synthetic market's, known in advance, so the test gives the ``enter_short`` signal a
stop that a coming minute's price crosses: the bot must open a short with the signal's
leverage, set the stop at ``open_rate * (1 + stop_loss)`` once the entry fills, and close
the trade with exit reason ``stop_loss`` once the price reaches it.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devservers.exchange import ExchangeStandIn
from devservers.exchange.market_view import MarketView
from devservers.freqtrade_harness import DryRunBot, freqtrade_env, write_config
from research.data.synthetic import SyntheticMarket

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

PAIR = "BTC/USDT:USDT"


def price_at(market: SyntheticMarket, when: datetime) -> float:
    """The stand-in's last price (best bid) during the minute of ``when``."""
    return MarketView(market, lambda: when).last_price(market.symbols[0])


def short_trades(db_path: Path) -> list[dict]:
    if not db_path.exists():
        return []
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "select pair, is_short, is_open, leverage, open_rate, stop_loss, close_rate, "
            "exit_reason, enter_tag from trades where open_rate > 0 order by id")]
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def plan_short(market: SyntheticMarket, now: datetime, horizon: int = 2
               ) -> tuple[datetime, float]:
    """The first coming minute whose next ``horizon`` minutes rise enough to cross a stop,
    and a stop fraction half way to their highest price.

    The horizon is short so the test's length is bounded: about half of all minutes qualify,
    so the wait for the start is a few minutes at most and the stop is crossed within
    ``horizon`` minutes of the entry."""
    minute = now.replace(second=0, microsecond=0)
    for j in range(1, 30):
        start = minute + timedelta(minutes=j)
        p0 = price_at(market, start)
        highest = max(price_at(market, start + timedelta(minutes=k))
                      for k in range(1, horizon + 1))
        if highest / p0 - 1 > 2e-4:
            return start, round((highest / p0 - 1) / 2, 6)
    raise AssertionError("the synthetic market does not rise in the next half hour")


@pytest.mark.timeout(900)  # bot start + the wait for a rising minute + the horizon
def test_short_signal_opens_a_short_and_its_stop_loss_closes_it(tmp_path, mongo_client,
                                                                mongo_uri):
    market = SyntheticMarket(seed=21, symbols=("BTC/USDT",))
    db_name = "dry_run_futures"
    mongo_client.drop_database(db_name)
    coll = mongo_client[db_name]["crypto_signals"]
    db_path = tmp_path / "trades.sqlite"
    with ExchangeStandIn(market=market) as server:  # real clock, as a bot needs
        cfg_path = write_config(tmp_path / "config.json", "config.dry-run.json",
                                server.overlay(futures=True), {
            "timeframe": "1m", "db_url": f"sqlite:///{db_path}", "max_open_trades": 1,
            "internals": {"process_throttle_secs": 1},
            "exchange": {"pair_whitelist": [PAIR]},
            "entry_pricing": {"price_side": "other", "use_order_book": True,
                              "order_book_top": 1},
            "exit_pricing": {"price_side": "other", "use_order_book": True,
                             "order_book_top": 1},
            "ext_signals": {"strategy_ids": ["fut"], "max_leverage": 2},
        })
        bot = DryRunBot(cfg_path, tmp_path, db_path,
                        freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=db_name)).start()
        try:
            bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text(), 120,
                         "bot start")
            start, stop_loss = plan_short(market, datetime.now(UTC))
            time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 1)
            last_closed = start - timedelta(minutes=1)
            coll.insert_one({"ts": last_closed, "timeframe": "1m", "pair": PAIR,
                             "symbol": "BINANCE:BTCUSDT.USDT", "strategy_id": "fut",
                             "action": "enter_short", "version": 1, "leverage": 3.0,
                             "stop_loss": stop_loss})
            opened = bot.wait_for(lambda: short_trades(db_path), 25, "the short to open")[0]
            assert (opened["pair"], opened["is_short"], opened["leverage"]) == (PAIR, 1, 2.0)
            assert opened["enter_tag"] == "ext:fut:v1"
            want_stop = opened["open_rate"] * (1 + stop_loss)
            with_stop = bot.wait_for(
                lambda: [t for t in short_trades(db_path) if t["stop_loss"]
                         and abs(t["stop_loss"] / want_stop - 1) < 1e-3], 20,
                "the signal's stop to be set")
            assert with_stop
            closed = bot.wait_for(lambda: [t for t in short_trades(db_path) if not t["is_open"]],
                                  4 * 60, "the stop-loss to close the short")[0]
            assert closed["exit_reason"] == "stop_loss"
            assert closed["close_rate"] >= want_stop * (1 - 1e-3)
        finally:
            bot.stop()
    mongo_client.drop_database(db_name)
