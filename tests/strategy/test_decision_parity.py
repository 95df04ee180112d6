"""One decision rule: research backtest trades == ``freqtrade backtesting`` trades, random cases.

Each case is drawn from its seed: a synthetic market (5 pairs, 300-360 bars,
1h or 1d), a signal set mixing action, weight and score signals (and combinations),
off-grid times, ``valid_until``, versions and up to three strategy ids, and random
``ext_signals`` settings (strategy priority, tolerance, max delay, enter/exit band,
confirm_n, min_hold, cooldown). The research side decides with
:func:`research.pipeline.decide_positions` and simulates with
``simulate_long_flat_tidy``; the Freqtrade side reads the same signals from the
MongoDB dev server through three routes, each a real ``freqtrade backtesting`` run:

* ``raw``: documents written as they are (off-grid ``ts`` kept), as a direct writer would;
* ``export``: the exporter with ``align="ceil"``;
* ``ingest``: the HTTP ingest API with ``?align=ceil``.

All three must give research's trades exactly: pair, entry/exit time, entry/exit
price (1e-9), profit ratio, enter tag, count, and trades still open at the end
(Freqtrade force-exits them at the last candle's open; research does the same).
``DECISION_PARITY_CASES`` sets the number of cases (default 20; ``make
parity-200`` runs 200). All backtests share one Freqtrade process start-up.

Futures cases (``DECISION_PARITY_FUTURES_CASES``, default 8) do the same on USD-M
perpetuals (``BTC/USDT:USDT``, futures mode, isolated margin): long, short and flat
intents as actions (``enter_short``/``exit_short`` too), signed weights (``-w`` short,
0 flat) or scores, flips, and on entries random ``leverage`` (some above the drawn
``max_leverage``), ``stop_loss`` and ``take_profit``. Research decides with the same
``decide_positions`` and simulates with ``simulate_long_short_tidy``; Freqtrade must
also agree on the side, the leverage and the exit reason (signal, stop, ROI).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from strategy_helpers import write_candles

from devservers.freqtrade_harness import (
    backtest_argv,
    deep_merge,
    freqtrade_env,
    run_backtests_in_one_process,
)
from research.backtest.simulate import simulate_long_flat_tidy, simulate_long_short_tidy
from research.data.synthetic import SyntheticMarket, generate_ohlcv, symbol_spec
from research.pipeline import decide_positions
from signal_export.consumer.matching import DecisionSettings
from signal_export.contract import pair_to_symbol, symbol_to_pair, timeframe_delta
from signal_export.exporter import export_signals
from signal_export.store import ensure_runs_indexes, ensure_signal_indexes

# the module fixture runs every backtest (84 by default) inside the first test
pytestmark = [pytest.mark.freqtrade, pytest.mark.slow, pytest.mark.timeout(1500)]

N_CASES = int(os.environ.get("DECISION_PARITY_CASES", "20"))
N_FUTURES = int(os.environ.get("DECISION_PARITY_FUTURES_CASES", "8"))
FUTURES_SEED = 1000  # futures cases are seeds FUTURES_SEED, FUTURES_SEED + 1, ...
ALL_PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT")
ROUTES = ("raw", "export", "ingest")
#: ingest producers: token -> the strategy ids it may write (the API checks it)
PRODUCERS = {"tok-parity-a-0123456789abcdef": ("alpha", "tv_trend"),
             "tok-parity-b-0123456789abcdef": ("beta",)}
STRATEGY_IDS = ("alpha", "tv_trend", "beta")
FEE = 0.001
START = pd.Timestamp("2025-03-03", tz="UTC")


@dataclass
class Case:
    seed: int
    timeframe: str
    pairs: tuple[str, ...]
    market: pd.DataFrame
    signals: pd.DataFrame  # contract-shaped, raw ts (off-grid ones included)
    settings: dict[str, Any]
    strategy_ids: tuple[str, ...]
    futures: bool = False
    trades: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def decision_settings(self) -> DecisionSettings:
        return DecisionSettings(**self.settings)


def draw_case(seed: int) -> Case:
    """A spot case: long/flat intents."""
    return _draw(seed, futures=False)


def draw_futures_case(seed: int) -> Case:
    """A futures case: long, short and flat intents with leverage, stops and targets."""
    return _draw(seed, futures=True)


def _draw(seed: int, futures: bool) -> Case:
    rng = np.random.default_rng(seed)
    timeframe = ("1h", "1d")[seed % 2]
    tf = pd.Timedelta(timeframe_delta(timeframe))
    n_bars = int(rng.integers(300, 361))
    spot = tuple(sorted(rng.choice(ALL_PAIRS, size=5, replace=False).tolist()))
    market = generate_ohlcv(SyntheticMarket(seed=seed + 100, symbols=list(spot)), START,
                            START + n_bars * tf, timeframe)
    pairs = spot
    if futures:  # the same candles, traded as the USDT-settled perpetuals
        pairs = tuple(f"{p}:USDT" for p in spot)
        market["symbol"] = market["symbol"].map(
            lambda s: pair_to_symbol(symbol_to_pair(s) + ":USDT"))
    bars = pd.DatetimeIndex(sorted(market["datetime"].unique()))
    ids = tuple(rng.permutation(STRATEGY_IDS)[: int(rng.integers(1, 4))].tolist())
    # intents: 1 enter long, -1 exit long; futures also 2 enter short, -2 exit short, 3 flat
    kinds = [1, -1, 2, -2, 3] if futures else [1, -1]
    rows = []
    for pair in pairs:
        for sid in STRATEGY_IDS:  # ids the bot does not read are written too (and ignored)
            # runs of 1-4 consecutive bars with one intent (so confirm_n > 1 can fire)
            intent = np.zeros(len(bars), dtype=np.int8)
            for start in rng.choice(len(bars), size=int(rng.integers(8, 40)), replace=False):
                intent[start:start + int(rng.integers(1, 5))] = rng.choice(kinds)
            for i in np.flatnonzero(intent):  # one signal per (id, pair, bar): unique after ceil
                rows.append(_draw_signal(rng, bars[i], tf, timeframe, pair, sid,
                                         int(intent[i])))
    settings = {
        "tolerance_bars": int(rng.integers(1, 4)),
        "max_delay_bars": float(rng.choice([0.5, 1.0, 2.0, 3.0, 10.0])),
        "enter_score": round(float(rng.uniform(0.5, 0.8)), 3),
        "exit_score": round(float(rng.uniform(0.2, 0.49)), 3),
        "confirm_n": int(rng.choice([1, 1, 2, 3])),
        "min_hold_bars": int(rng.choice([0, 0, 1, 2, 4])),
        "cooldown_bars": int(rng.choice([0, 0, 1, 3])),
    }
    if futures:
        settings["max_leverage"] = float(rng.choice([1.0, 2.0, 3.0, 5.0]))
    return Case(seed, timeframe, pairs, market, pd.DataFrame(rows), settings, ids, futures)


_ACTIONS = {1: "enter_long", -1: "exit_long", 2: "enter_short", -2: "exit_short"}


def _draw_signal(rng: np.random.Generator, bar: pd.Timestamp, tf: pd.Timedelta,
                 timeframe: str, pair: str, sid: str, intent: int) -> dict[str, Any]:
    """One signal for ``intent`` (see ``_draw``) in a random shape; futures entries may
    carry leverage, a stop and a target."""
    off_grid = rng.random() < 0.4  # a time inside the previous bar: it belongs to ``bar``
    ts = bar - pd.Timedelta(seconds=int(rng.integers(1, tf.total_seconds()))) if off_grid \
        else bar
    shapes = ["action", "weight", "score", "action+weight", "action+score"]
    if intent == 3:  # flat: only a zero weight says "no position, either side"
        shapes = ["weight"]
    elif abs(intent) == 2:  # scores are long-only
        shapes = ["action", "weight", "action+weight"]
    shape = rng.choice(shapes)
    enter = intent in (1, 2)
    row: dict[str, Any] = {"ts": ts, "timeframe": timeframe, "pair": pair,
                           "symbol": pair_to_symbol(pair), "strategy_id": sid,
                           "action": None, "score": np.nan, "weight": np.nan,
                           "valid_until": pd.NaT, "version": int(rng.integers(1, 4))}
    if "action" in shape:
        row["action"] = _ACTIONS[intent]
    if "weight" in shape:
        sign = -1.0 if intent == 2 else 1.0
        row["weight"] = sign * round(float(rng.uniform(0.1, 1.0)), 4) if enter else 0.0
        if shape == "weight" and rng.random() < 0.4 and intent != 2:
            row["weight"] = 0.0
    if "score" in shape:  # leaning to the intent; the band decides (or says no_action)
        row["score"] = round(float(rng.uniform(0.4, 1.0) if enter else rng.uniform(0.0, 0.6)), 4)
    if rng.random() < 0.3:  # after the bar's open, so never before ts even once aligned
        row["valid_until"] = bar + pd.Timedelta(seconds=int(rng.uniform(0.05, 2.5)
                                                            * tf.total_seconds()))
    weight = row["weight"]
    entry = row["action"] in ("enter_long", "enter_short") or (
        row["action"] is None and not np.isnan(weight) and weight != 0)
    if ":" in pair:
        row.update(leverage=np.nan, stop_loss=np.nan, take_profit=np.nan)
        if entry and rng.random() < 0.8:
            lev = float(rng.choice([1.0, 2.0, 3.0, 5.0, 8.0]))
            row["leverage"] = lev
            if rng.random() < 0.7:  # well inside the margin (Freqtrade would liquidate first)
                row["stop_loss"] = round(float(rng.uniform(0.003, min(0.6 / lev, 0.12))), 4)
            if rng.random() < 0.7:
                row["take_profit"] = round(float(rng.uniform(0.003, 0.15)), 4)
    return row


# --- the three routes into the store -------------------------------------------------------


def _raw_documents(signals: pd.DataFrame) -> list[dict[str, Any]]:
    docs = []
    for rec in signals.to_dict(orient="records"):
        doc = {k: v for k, v in rec.items()
               if not (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT)}
        doc["ts"] = rec["ts"].to_pydatetime()
        if "valid_until" in doc:
            doc["valid_until"] = rec["valid_until"].to_pydatetime()
        docs.append(doc)
    return docs


def _ingest_bodies(signals: pd.DataFrame) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for token, ids in PRODUCERS.items():
        mine = signals[signals["strategy_id"].isin(ids)]
        docs = _raw_documents(mine)
        for doc in docs:
            doc["ts"] = doc["ts"].isoformat()
            if "valid_until" in doc:
                doc["valid_until"] = doc["valid_until"].isoformat()
        out += [(token, docs[i:i + 500]) for i in range(0, len(docs), 500)]
    return out


def _store_raw(db: Any, case: Case) -> None:
    ensure_signal_indexes(db["crypto_signals"])
    db["crypto_signals"].insert_many(_raw_documents(case.signals))


def _store_export(db: Any, case: Case) -> None:
    result = export_signals(case.signals, db["crypto_signals"], runs_collection=db["export_runs"],
                            align="ceil")
    assert result.rejected == 0 and result.inserted == len(case.signals), result.errors[:3]


def _store_ingest(db: Any, case: Case) -> None:
    import httpx

    from signal_export.ingest.app import create_app
    from signal_export.ingest.server import BackgroundServer
    from signal_export.ingest.service import SignalSink
    from signal_export.ingest.tokens import Producer, RateLimit, TokenRegistry, hash_token

    ensure_signal_indexes(db["crypto_signals"])
    ensure_runs_indexes(db["export_runs"])
    registry = TokenRegistry(Producer(f"p{i}", hash_token(tok), frozenset(ids), None)
                             for i, (tok, ids) in enumerate(PRODUCERS.items()))
    sink = SignalSink(db["crypto_signals"], db["export_runs"], max_items=600)
    server = BackgroundServer(create_app(sink, registry, max_body_bytes=4 * 1024 * 1024,
                                         rate_limit=RateLimit(per_second=1e4, burst=10_000)))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for token, body in _ingest_bodies(case.signals):
                r = client.post("/v1/signals", params={"align": "ceil"}, json=body,
                                headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text[:500]
    finally:
        server.stop()
    assert db["crypto_signals"].count_documents({}) == len(case.signals)


STORE = {"raw": _store_raw, "export": _store_export, "ingest": _store_ingest}


# --- both sides --------------------------------------------------------------------------------


def research_trades(case: Case, price_decimals: dict[str, int] | None = None) -> pd.DataFrame:
    """``price_decimals``: the exchange's ticks (futures stops and targets are rounded)."""
    decisions = decide_positions(case.signals, case.market, timeframe=case.timeframe,
                                 settings=case.decision_settings, strategy_ids=case.strategy_ids)
    assert decisions.sided == case.futures
    if case.futures:
        result = simulate_long_short_tidy(case.market, decisions.positions,
                                          timeframe=case.timeframe, fee=FEE,
                                          price_decimals=price_decimals)
    else:
        result = simulate_long_flat_tidy(case.market, decisions.positions,
                                         timeframe=case.timeframe, fee=FEE)
    trades = result.trades.assign(pair=result.trades["symbol"].astype(str).map(symbol_to_pair))
    tags = decisions.positions.assign(
        pair=decisions.positions["symbol"].map(symbol_to_pair),
        entry_time=decisions.positions["datetime"] + pd.Timedelta(timeframe_delta(case.timeframe)),
    ).dropna(subset=["enter_tag"])[["pair", "entry_time", "enter_tag"]]
    trades = trades.merge(tags, on=["pair", "entry_time"], how="left")
    assert not trades["is_open"].any()  # the end-of-data rule closes them, as Freqtrade does
    return trades.sort_values(["pair", "entry_time"]).reset_index(drop=True)


def _freqtrade_config(case: Case, mongo_uri: str, db_name: str, overlay: dict) -> dict:
    base = json.loads((Path(__file__).resolve().parents[2] / "configs"
                       / "config.backtest.json").read_text())
    cfg = deep_merge(base, overlay)
    cfg = deep_merge(cfg, {"timeframe": case.timeframe, "fee": FEE, "max_open_trades": -1,
                           "stake_amount": 1000, "dry_run_wallet": 10_000_000,
                           "exchange": {"pair_whitelist": list(case.pairs)}})
    if case.futures:  # Binance futures have no ticker prices: Freqtrade needs the book
        cfg = deep_merge(cfg, {"entry_pricing": {"price_side": "other", "use_order_book": True},
                               "exit_pricing": {"price_side": "other", "use_order_book": True}})
    cfg["ext_signals"] = {"mongo_uri": mongo_uri, "db": db_name,
                          "strategy_ids": list(case.strategy_ids), **case.settings}
    return cfg


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory, mongo_client: Any, mongo_uri: str,
          standin_all_pairs: Any) -> list[Case]:
    """Draw every case, store its signals three ways, run all backtests in one Freqtrade process."""
    from freqtrade.data.btanalysis import load_backtest_data

    work = tmp_path_factory.mktemp("decision-parity")
    drawn = [draw_case(seed) for seed in range(N_CASES)] + [
        draw_futures_case(FUTURES_SEED + i) for i in range(N_FUTURES)]
    jobs, where = [], []
    for case in drawn:
        cdir = work / f"case{case.seed}"
        datadir = cdir / "data" / "binance"
        datadir.mkdir(parents=True)
        candles = {symbol_to_pair(s): g.rename(columns={"datetime": "date"})[
            ["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
            for s, g in case.market.groupby("symbol")}
        if case.futures:
            write_futures_candles(datadir, candles, case.timeframe)
        else:
            write_candles(datadir, candles, case.timeframe)
        for route in ROUTES:
            db_name = f"parity_{case.seed}_{route}"
            mongo_client.drop_database(db_name)
            STORE[route](mongo_client[db_name], case)
            rdir = cdir / route
            rdir.mkdir()
            cfg_path = rdir / "config.json"
            overlay = standin_all_pairs.overlay(futures=case.futures)
            cfg_path.write_text(json.dumps(_freqtrade_config(case, mongo_uri, db_name, overlay)))
            jobs.append(backtest_argv(cfg_path, cdir, datadir, case.timeframe,
                                      f"{START:%Y%m%d}-", rdir / "bt", rdir / "freqtrade.log"))
            (rdir / "bt").mkdir()
            where.append((case, route, rdir))
    codes = run_backtests_in_one_process(jobs, work, freqtrade_env(), timeout=1200)
    for (case, route, rdir), code in zip(where, codes, strict=True):
        log = (rdir / "freqtrade.log").read_text() if (rdir / "freqtrade.log").exists() else ""
        assert code == 0, f"case {case.seed} {route}: freqtrade exited {code}\n{log[-3000:]}"
        trades = load_backtest_data(rdir / "bt")
        if trades.empty:  # no trades: an empty frame without columns
            trades = pd.DataFrame(columns=["pair", "open_date", "close_date", "open_rate",
                                           "close_rate", "profit_ratio", "enter_tag",
                                           "exit_reason"])
        case.trades[route] = trades.sort_values(["pair", "open_date"]).reset_index(drop=True)
    for case in drawn:
        for route in ROUTES:
            mongo_client.drop_database(f"parity_{case.seed}_{route}")
    return drawn


@pytest.fixture(scope="module")
def standin_all_pairs() -> Any:
    from devservers.exchange.server import ExchangeStandIn

    with ExchangeStandIn(pairs=ALL_PAIRS) as server:
        yield server


def write_futures_candles(datadir: Path, frames: dict[str, pd.DataFrame], timeframe: str
                          ) -> None:
    """Futures candles, plus the mark candles and (zero) funding rates Freqtrade's futures
    backtesting loads at the exchange's 1h funding timeframe: funding-free, as research."""
    from freqtrade.data.history import get_datahandler

    handler = get_datahandler(datadir, "feather")
    for pair, frame in frames.items():
        handler.ohlcv_store(pair, timeframe, frame, candle_type="futures")
        hours = pd.date_range(frame["date"].iloc[0], frame["date"].iloc[-1]
                              + pd.Timedelta(timeframe_delta(timeframe)), freq="1h",
                              inclusive="left")
        mark = frame.set_index("date")[["open", "high", "low", "close", "volume"]].reindex(
            hours, method="ffill").rename_axis("date").reset_index()
        handler.ohlcv_store(pair, "1h", mark, candle_type="mark")
        handler.ohlcv_store(pair, "1h", pd.DataFrame({"date": hours, "funding_rate": 0.0}),
                            candle_type="funding_rate")


def price_decimals(case: Case, standin: Any) -> dict[str, int]:
    """The tick the stand-in's markets give each pair (what Freqtrade rounds stops to)."""
    return {s: symbol_spec(standin.market, symbol_to_pair(s).split(":")[0]).price_decimals
            for s in case.market["symbol"].unique()}


def assert_same_trades(expected: pd.DataFrame, got: pd.DataFrame, what: str) -> None:
    assert len(got) == len(expected), f"{what}: {len(got)} freqtrade trades vs " \
                                      f"{len(expected)} research trades"
    assert list(got["pair"]) == list(expected["pair"]), what
    assert list(got["open_date"]) == list(expected["entry_time"]), what
    assert list(got["close_date"]) == list(expected["exit_time"]), what
    assert got["open_rate"].to_numpy() == pytest.approx(expected["entry_price"].to_numpy(),
                                                        rel=1e-9), what
    assert got["close_rate"].to_numpy() == pytest.approx(expected["exit_price"].to_numpy(),
                                                         rel=1e-9), what
    assert got["profit_ratio"].to_numpy() == pytest.approx(expected["return"].to_numpy(),
                                                           rel=1e-6, abs=1e-9), what
    assert list(got["enter_tag"]) == list(expected["enter_tag"]), what
    if "side" in expected:  # futures: the side, the leverage and why each trade ended
        assert list(np.where(got["is_short"], -1, 1)) == list(expected["side"]), what
        assert got["leverage"].to_numpy(float).tolist() == expected["leverage"].tolist(), what
        # a signal exit's reason is its exit tag (ext:<strategy id>:v<version>)
        # and Freqtrade's end-of-data force_exit is research's exit at the last open
        reason = got["exit_reason"].where(~got["exit_reason"].str.startswith("ext:")
                                          & (got["exit_reason"] != "force_exit"), "exit_signal")
        assert list(reason) == list(expected["exit_reason"]), what


@pytest.mark.parametrize("index", range(N_CASES + N_FUTURES))
def test_research_and_freqtrade_trade_the_same_on_every_route(cases: list[Case], index: int,
                                                              standin_all_pairs: Any):
    case = cases[index]
    expected = research_trades(case, price_decimals(case, standin_all_pairs))
    for route in ROUTES:
        assert_same_trades(expected, case.trades[route],
                           f"case {case.seed} ({case.timeframe}, ids {case.strategy_ids}, "
                           f"{case.settings}) via {route}")


def test_the_cases_cover_what_they_claim(cases: list[Case]):
    """The generator is not degenerate: every shape, setting and end-of-data case occurs."""
    signals = pd.concat([c.signals for c in cases], ignore_index=True)
    assert signals["action"].notna().any() and signals["weight"].notna().any()
    assert (signals["action"].isna() & signals["weight"].isna() & signals["score"].notna()).any()
    off_grid = signals["ts"].dt.second.ne(0) | signals["ts"].dt.minute.ne(0)
    assert off_grid.any() and signals["valid_until"].notna().any()
    assert {c.timeframe for c in cases} == {"1h", "1d"}
    assert any(len(c.strategy_ids) > 1 for c in cases)
    for knob in ("confirm_n", "min_hold_bars", "cooldown_bars", "tolerance_bars"):
        assert len({c.settings[knob] for c in cases}) > 1, knob
    trades = pd.concat([c.trades["raw"] for c in cases], ignore_index=True)
    assert len(trades) > 10 * len(cases)
    assert (trades["exit_reason"] == "force_exit").any()  # trades open at the end are compared


def test_the_futures_cases_cover_what_they_claim(cases: list[Case], standin_all_pairs: Any):
    """Shorts, flips, leverage above the cap, and every exit kind occur in the futures cases."""
    futures = [c for c in cases if c.futures]
    assert len(futures) == N_FUTURES
    if not futures:
        return
    signals = pd.concat([c.signals for c in futures], ignore_index=True)
    assert (signals["action"] == "enter_short").any() and (signals["weight"] < 0).any()
    assert (signals["action"] == "exit_short").any() and (signals["weight"] == 0).any()
    assert signals["stop_loss"].notna().any() and signals["take_profit"].notna().any()
    assert len({c.settings["max_leverage"] for c in futures}) > 1
    ours = pd.concat([research_trades(c, price_decimals(c, standin_all_pairs))
                      for c in futures], ignore_index=True)
    assert (ours["side"] == -1).any() and (ours["side"] == 1).any()
    assert set(ours["exit_reason"]) >= {"exit_signal", "stop_loss", "roi"}
    assert (ours["leverage"] > 1).any()
    capped = [c for c in futures if (c.signals["leverage"] > c.settings["max_leverage"]).any()]
    assert capped  # signals asking for more than max_leverage trade at the cap
    flips = ours.groupby("symbol").apply(
        lambda t: ((t["exit_time"].to_numpy()[:-1] == t["entry_time"].to_numpy()[1:])
                   & (t["side"].to_numpy()[:-1] != t["side"].to_numpy()[1:])).any())
    assert flips.any()  # long -> short (or back) on one signal: exit and entry at one open
