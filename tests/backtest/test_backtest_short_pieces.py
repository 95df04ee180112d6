"""simulate_long_short works in cache-sized pieces: no result may depend on where they are cut.

The equity (``segment_lines``) and the stop/target scan (``scan_exits``) run over pieces of
``_PIECE_CELLS`` bars; at the sizes of the other tests everything fits in one piece, so
here the pieces are made a few bars long and the results must stay exactly the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.backtest import longshort, simulate_long_short


@pytest.mark.parametrize("piece", [1, 3, 64, 1 << 18])
def test_segment_lines_equals_whole_array_repeats(monkeypatch, piece):
    rng = np.random.default_rng(piece)
    n_sym, n_bar = 4, 300
    size = n_sym * n_bar
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_sym, n_bar)), axis=1))
    inner = np.sort(rng.choice(np.arange(1, size), 60))  # repeated starts: empty segments
    starts = np.sort(np.concatenate((np.arange(n_sym) * n_bar, inner)))
    a = rng.normal(100, 10, len(starts))
    b = np.where(rng.random(len(starts)) < 0.5, 0.0, rng.normal(0, 2, len(starts)))
    lengths = np.diff(starts, append=size)
    want = np.repeat(b, lengths) * close.ravel() + np.repeat(a, lengths)
    close_nan = close.copy()
    flat_b = np.repeat(b, lengths).reshape(n_sym, n_bar)
    close_nan[(flat_b == 0) & (rng.random((n_sym, n_bar)) < 0.3)] = np.nan  # never multiplied
    monkeypatch.setattr(longshort, "_PIECE_CELLS", piece)
    got = longshort.segment_lines(starts, a, b, close)
    assert got.shape == (n_sym, n_bar)
    assert np.array_equal(got.ravel(), want)
    got_nan = longshort.segment_lines(starts, a, b, close_nan, nan_close=True)
    assert np.array_equal(got_nan.ravel(), want)


def _case(seed: int = 5, n: int = 700):
    rng = np.random.default_rng(seed)
    syms = ["A", "B", "C"]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.003, (n, 3)))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, (n, 3))))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, (n, 3))))
    frames = [pd.DataFrame(x, index=idx, columns=syms) for x in (open_, close, high, low)]
    missing = rng.random((n, 3)) < 0.03
    missing[:50, 2] = True  # a symbol that starts late
    for f in frames:
        f[missing] = np.nan
    signal = pd.DataFrame(rng.choice([-1.0, 0.0, 1.0, np.nan, np.nan, np.nan, np.nan],
                                     (n, 3)), index=idx, columns=syms)

    def per_bar(lo: float, hi: float) -> pd.DataFrame:
        values = np.where(rng.random((n, 3)) < 0.6, rng.uniform(lo, hi, (n, 3)), np.nan)
        return pd.DataFrame(values, index=idx, columns=syms)

    funding = pd.DataFrame(np.where(rng.random((n, 3)) < 0.1, rng.normal(0, 1e-3, (n, 3)),
                                    np.nan), index=idx, columns=syms)
    return frames, signal, {"leverage": per_bar(1.0, 4.0), "stop_loss": per_bar(0.004, 0.03),
                            "take_profit": per_bar(0.004, 0.05), "funding_rate": funding}


def _run(frames, signal, risk):
    o, c, h, lw = frames
    return simulate_long_short(o, c, signal, timeframe="1h", high=h, low=lw, fee=0.0005,
                               slippage_bps=1.0, initial_capital=1_000.0, **risk)


@pytest.mark.parametrize("piece", [1, 7, 500])
def test_results_do_not_depend_on_the_piece_size(monkeypatch, piece):
    frames, signal, risk = _case()
    for with_risk in (risk, {}):
        whole = _run(frames, signal, with_risk)  # 2,100 bars: one piece
        monkeypatch.setattr(longshort, "_PIECE_CELLS", piece)
        cut = _run(frames, signal, with_risk)
        monkeypatch.undo()
        assert np.array_equal(whole.equity_by_symbol.to_numpy(), cut.equity_by_symbol.to_numpy(),
                              equal_nan=True)
        assert np.array_equal(whole.position.to_numpy(), cut.position.to_numpy())
        pd.testing.assert_frame_equal(whole.trades, cut.trades, check_exact=True)
        if with_risk:
            assert {"exit_signal", "stop_loss", "roi"} <= set(cut.trades["exit_reason"])
        assert (cut.trades["side"] == -1).any() and (cut.trades["side"] == 1).any()
