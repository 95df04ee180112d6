"""Deterministic synthetic crypto market for offline demos and tests.

A seeded universe of correlated symbols (a common market factor), with slow
trends, a mean-reverting component, volatility regimes and optional missing
bars. Every 1m candle is a pure function of ``(seed, symbol, UTC day)``: the
day-level path is drawn once per symbol over a fixed horizon and each day's
minutes are a Brownian bridge drawn from a generator keyed on that day. So any
``[start, end)`` slice at any timeframe equals the same slice of a longer
generation, which lets the exchange stand-in serve klines on demand that are
identical to what research stored. Higher timeframes are aggregated from 1m.

Not a market model for research conclusions: it only has to look plausible
and be reproducible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from signal_export.contract import (
    OHLCV_FIELDS,
    ContractError,
    ensure_utc,
    symbol_to_pair,
    timeframe_seconds,
    to_symbol,
)

#: First UTC day the generator can produce and the number of days it covers.
ORIGIN = pd.Timestamp("2017-01-01", tz=UTC)
HORIZON_DAYS = 7305  # 20 years: 2017-01-01 .. 2036-12-31
MINUTES_PER_DAY = 1440
_MS_PER_MINUTE = 60_000
_CHUNK_MINUTES = 366 * 1440  # minutes generated at once (memory bound)
_ORIGIN_MINUTE = ORIGIN.value // 60_000_000_000  # unix minute index of ORIGIN

DEFAULT_SYMBOLS: tuple[str, ...] = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT")

#: Plausible starting prices for well-known bases; others get a hashed price.
_KNOWN_START_PRICES = {
    "BTC": 30_000.0, "ETH": 2_000.0, "SOL": 50.0, "BNB": 300.0, "XRP": 0.5,
    "ADA": 0.4, "DOGE": 0.08, "LTC": 80.0, "AVAX": 20.0, "DOT": 6.0, "LINK": 8.0,
}

_MARKET_KEY = 0  # key of the common factor stream
_STREAM_DAILY, _STREAM_INTRADAY, _STREAM_GAPS = 1, 2, 3


@dataclass(frozen=True)
class SyntheticMarket:
    """The universe and knobs; equal configs generate equal candles.

    ``gap_rate`` is the expected number of gaps (runs of missing 1m bars, each
    up to ``max_gap_minutes`` long) per symbol per day; 0 means no gaps.
    """

    seed: int = 7
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    annual_vol: tuple[float, float] = (0.35, 0.7)
    market_correlation: tuple[float, float] = (0.6, 0.9)
    trend_strength: float = 0.05
    mean_reversion_strength: float = 1.0
    gap_rate: float = 0.0
    max_gap_minutes: int = 30
    quote_volume_per_minute: float = 200_000.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", tuple(to_symbol(s) for s in self.symbols))
        if self.gap_rate < 0 or self.max_gap_minutes < 1:
            raise ValueError("gap_rate must be >= 0 and max_gap_minutes >= 1")

    @property
    def pairs(self) -> tuple[str, ...]:
        return tuple(symbol_to_pair(s) for s in self.symbols)


@dataclass(frozen=True)
class SymbolSpec:
    """Per-symbol constants: price/quantity precision and model parameters."""

    symbol: str
    start_price: float
    price_decimals: int
    quantity_decimals: int
    annual_vol: float
    correlation: float
    minute_volume: float

    @property
    def tick_size(self) -> float:
        return 10.0 ** -self.price_decimals

    @property
    def step_size(self) -> float:
        return 10.0 ** -self.quantity_decimals


def _key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


@lru_cache(maxsize=256)
def symbol_spec(market: SyntheticMarket, symbol: str) -> SymbolSpec:
    """Model parameters and exchange precision of one symbol (deterministic)."""
    symbol = to_symbol(symbol)
    rng = _rng(market.seed, _key(symbol), 0)
    base = symbol_to_pair(symbol).split("/")[0]
    hashed_price = float(10 ** rng.uniform(-1, 3))
    price = _KNOWN_START_PRICES.get(base, hashed_price)
    price_decimals = int(np.clip(6 - np.floor(np.log10(price)), 0, 8))
    qty_decimals = int(np.clip(np.floor(np.log10(price)) - 1, 0, 8))
    return SymbolSpec(
        symbol=symbol,
        start_price=price,
        price_decimals=price_decimals,
        quantity_decimals=qty_decimals,
        annual_vol=float(rng.uniform(*market.annual_vol)),
        correlation=float(rng.uniform(*market.market_correlation)),
        minute_volume=market.quote_volume_per_minute / price,
    )


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """Stationary unit-variance AR(1) driven by standard normal shocks."""
    return lfilter([np.sqrt(1.0 - phi * phi)], [1.0, -phi], shocks)


@lru_cache(maxsize=256)
def _market_daily(seed: int) -> np.ndarray:
    """Common factor draws per day: (2, HORIZON_DAYS) = return shock, regime shock."""
    return _rng(seed, _MARKET_KEY, _STREAM_DAILY).standard_normal((2, HORIZON_DAYS))


@lru_cache(maxsize=256)
def _daily_path(market: SyntheticMarket, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """Log price at each day boundary (HORIZON_DAYS + 1) and daily volatility per day."""
    spec = symbol_spec(market, symbol)
    common_ret, common_regime = _market_daily(market.seed)
    own = _rng(market.seed, _key(symbol), _STREAM_DAILY).standard_normal((4, HORIZON_DAYS))
    rho = spec.correlation
    regime = _ar1(0.7 * common_regime + np.sqrt(1 - 0.49) * own[0], 0.97)
    vol_multiplier = np.where(regime > 0.8, 1.8, 1.0) * np.exp(0.15 * regime)
    base_sigma = spec.annual_vol / np.sqrt(365.0)
    sigma = base_sigma * vol_multiplier
    shocks = rho * common_ret + np.sqrt(1 - rho * rho) * own[1]
    drift = market.trend_strength * base_sigma * _ar1(own[2], 0.99)
    # a random walk anchored very weakly (half-life ~1 year) so decades stay plausible
    walk = np.concatenate([[0.0], lfilter([1.0], [1.0, -0.998], drift + sigma * shocks)])
    reverting = market.mean_reversion_strength * base_sigma * _ar1(own[3], 0.9)
    log_price = np.log(spec.start_price) + walk + np.concatenate([[0.0], reverting])
    return log_price, sigma


def _day_draws(market: SyntheticMarket, symbol: str, day: int) -> np.ndarray:
    """(4, 1440) standard normals of one symbol-day: bridge, high wick, low wick, volume."""
    return _rng(market.seed, _key(symbol), _STREAM_INTRADAY, day).standard_normal(
        (4, MINUTES_PER_DAY)
    )


def _day_gaps(market: SyntheticMarket, symbol: str, day: int) -> np.ndarray:
    """Boolean (1440,) mask of minutes present on one symbol-day."""
    present = np.ones(MINUTES_PER_DAY, dtype=bool)
    if market.gap_rate <= 0:
        return present
    rng = _rng(market.seed, _key(symbol), _STREAM_GAPS, day)
    count = rng.poisson(market.gap_rate)
    starts = rng.integers(0, MINUTES_PER_DAY, count)
    lengths = rng.integers(1, market.max_gap_minutes + 1, count)
    for s, n in zip(starts, lengths, strict=True):  # a handful of gaps per day at most
        present[s : s + n] = False
    return present


def _minute_days(
    market: SyntheticMarket, symbol: str, day0: int, day1: int
) -> dict[str, np.ndarray]:
    """1m OHLCV arrays of shape (days, 1440) for days [day0, day1) since ORIGIN."""
    if day0 < 0 or day1 > HORIZON_DAYS:
        raise ValueError(
            f"synthetic market covers {ORIGIN:%Y-%m-%d} .. "
            f"{ORIGIN + pd.Timedelta(days=HORIZON_DAYS):%Y-%m-%d} only"
        )
    spec = symbol_spec(market, symbol)
    log_price, sigma = _daily_path(market, symbol)
    days = np.arange(day0, day1)
    n = len(days)
    own = np.stack([_day_draws(market, symbol, int(d)) for d in days]) if n else np.empty(
        (0, 4, MINUTES_PER_DAY)
    )
    common = np.stack([_day_draws(market, "MARKET", int(d))[0] for d in days]) if n else (
        np.empty((0, MINUTES_PER_DAY))
    )
    present = np.stack([_day_gaps(market, symbol, int(d)) for d in days]) if n else np.empty(
        (0, MINUTES_PER_DAY), dtype=bool
    )
    rho = spec.correlation
    minute_sigma = (sigma[days] / np.sqrt(MINUTES_PER_DAY))[:, None]
    steps = minute_sigma * (rho * common + np.sqrt(1 - rho * rho) * own[:, 0])
    walk = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
    frac = np.arange(MINUTES_PER_DAY + 1) / MINUTES_PER_DAY
    bridge = walk - frac * walk[:, -1:]
    start, stop = log_price[days][:, None], log_price[days + 1][:, None]
    path = np.exp(start + frac * (stop - start) + bridge)  # (n, 1441), shared endpoints
    prices = np.round(path, spec.price_decimals)
    open_, close = prices[:, :-1], prices[:, 1:]
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = np.round(top * np.exp(0.5 * minute_sigma * np.abs(own[:, 1])), spec.price_decimals)
    low = np.round(bottom * np.exp(-0.5 * minute_sigma * np.abs(own[:, 2])), spec.price_decimals)
    move = np.abs(np.log(close / open_)) / minute_sigma
    volume = spec.minute_volume * (sigma[days] / sigma.mean())[:, None] * np.exp(
        0.5 * own[:, 3] + 0.3 * move
    )
    return {
        "open": open_,
        "high": np.maximum(high, top),
        "low": np.minimum(low, bottom),
        "close": close,
        "volume": np.maximum(np.round(volume, spec.quantity_decimals), spec.step_size),
        "present": present,
    }


def _bar_minutes(timeframe: str) -> int:
    seconds = timeframe_seconds(timeframe)
    if seconds % 60 or not (86400 % seconds == 0 or seconds % 86400 == 0):
        raise ContractError(
            f"timeframe {timeframe!r}: the synthetic market serves minute, hour and day bars"
            " that divide or are whole multiples of a day"
        )
    if timeframe.endswith("w"):
        raise ContractError(f"timeframe {timeframe!r}: weekly bars are not supported")
    return seconds // 60


def _to_minute(value: datetime | pd.Timestamp | str, name: str) -> int:
    ts = pd.Timestamp(value) if isinstance(value, str) else value
    ts = ensure_utc(ts, name)
    return int(np.ceil(ts.value / 60_000_000_000))


def generate_symbol_ohlcv(
    market: SyntheticMarket,
    symbol: str,
    start: datetime | pd.Timestamp | str,
    end: datetime | pd.Timestamp | str,
    timeframe: str = "1m",
) -> pd.DataFrame:
    """Candles of one symbol whose open time lies in ``[start, end)``.

    Columns ``datetime`` (``datetime64[ms, UTC]``, bar open time), ``symbol``,
    open/high/low/close/volume. Bars of a higher timeframe aggregate the 1m
    bars present in them; a bar with no 1m bar present is missing.
    """
    symbol = to_symbol(symbol)
    k = _bar_minutes(timeframe)
    m0, m1 = _to_minute(start, "start"), _to_minute(end, "end")
    first_bar = -(-m0 // k)  # ceil: first bar whose open is >= start
    last_bar = -(-m1 // k)  # bars with open < end
    if last_bar <= first_bar:
        return empty_ohlcv_frame()
    # about a year of minutes per chunk bounds memory for long daily requests
    chunk = max(1, _CHUNK_MINUTES // k)
    parts = [_bars(market, symbol, k, b, min(b + chunk, last_bar))
             for b in range(first_bar, last_bar, chunk)]
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True)


def _bars(market: SyntheticMarket, symbol: str, k: int, first_bar: int,
          last_bar: int) -> pd.DataFrame:
    """Bars of ``k`` minutes with unix-minute indexes ``[first_bar, last_bar) * k``."""
    u0, u1 = first_bar * k, last_bar * k  # unix minutes spanned
    d0 = (u0 - _ORIGIN_MINUTE) // MINUTES_PER_DAY
    d1 = -(-(u1 - _ORIGIN_MINUTE) // MINUTES_PER_DAY)
    arrays = _minute_days(market, symbol, int(d0), int(d1))
    offset = u0 - (_ORIGIN_MINUTE + d0 * MINUTES_PER_DAY)
    width = u1 - u0
    flat = {
        name: a.reshape(-1)[offset : offset + width].reshape(-1, k) for name, a in arrays.items()
    }
    present = flat["present"]
    has_bar = present.any(axis=1)
    idx = np.arange(len(present))
    first = np.argmax(present, axis=1)
    last = k - 1 - np.argmax(present[:, ::-1], axis=1)
    bars = {
        "open": flat["open"][idx, first],
        "high": np.where(present, flat["high"], -np.inf).max(axis=1),
        "low": np.where(present, flat["low"], np.inf).min(axis=1),
        "close": flat["close"][idx, last],
        "volume": np.where(present, flat["volume"], 0.0).sum(axis=1),
    }
    spec = symbol_spec(market, symbol)
    if k > 1:
        bars["volume"] = np.round(bars["volume"], spec.quantity_decimals)
    opens_ms = (np.arange(first_bar, last_bar, dtype=np.int64) * k * _MS_PER_MINUTE)[has_bar]
    return pd.DataFrame(
        {
            "datetime": pd.to_datetime(opens_ms, unit="ms", utc=True).astype("datetime64[ms, UTC]"),
            "symbol": symbol,
            **{name: values[has_bar] for name, values in bars.items()},
        }
    )


def generate_ohlcv(
    market: SyntheticMarket,
    start: datetime | pd.Timestamp | str,
    end: datetime | pd.Timestamp | str,
    timeframe: str = "1m",
    symbols: tuple[str, ...] | list[str] | None = None,
) -> pd.DataFrame:
    """Tidy candles of several symbols (default: the market's universe), ``[start, end)``."""
    chosen = market.symbols if symbols is None else tuple(to_symbol(s) for s in symbols)
    frames = [generate_symbol_ohlcv(market, s, start, end, timeframe) for s in chosen]
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_ohlcv_frame()
    return pd.concat(frames, ignore_index=True)


def empty_ohlcv_frame() -> pd.DataFrame:
    """The zero-row frame with the generator's columns and dtypes."""
    return pd.DataFrame(
        {
            "datetime": pd.Series([], dtype="datetime64[ms, UTC]"),
            "symbol": pd.Series([], dtype="str"),
            **{name: pd.Series([], dtype="float64") for name in OHLCV_FIELDS},
        }
    )
