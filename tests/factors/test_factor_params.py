"""Factor parameters are checked before TA-Lib sees them; the error names factor and parameter."""

from __future__ import annotations

import numpy as np
import pytest

from research.factors import FactorError, compute_factors, list_factors, resolve_spec
from research.factors.technical import TALIB_PERIOD


@pytest.mark.parametrize(("request_", "message"), [
    ({"name": "rsi", "params": {"period": -5}},
     "factor 'rsi': parameter 'period' must be an integer in 2..100000, got -5"),
    ({"name": "rsi", "params": {"period": "abc"}},
     "factor 'rsi': parameter 'period' must be an integer in 2..100000, got 'abc' (str)"),
    ({"name": "rsi", "params": {"period": 1}}, "parameter 'period' must be an integer in 2"),
    ({"name": "rsi", "params": {"period": 100_001}}, "in 2..100000, got 100001"),
    ({"name": "rsi", "params": {"period": 14.5}}, "got 14.5 (float)"),
    ({"name": "rsi", "params": {"period": True}}, "got True (bool)"),
    ({"name": "sma", "params": {"period": None}}, "factor 'sma': parameter 'period'"),
    ({"name": "macd", "params": {"fast": 30}},
     "factor 'macd': parameter 'fast' (30) must be smaller than 'slow' (26)"),
    ({"name": "macd", "params": {"signal": 0}}, "factor 'macd': parameter 'signal'"),
    ({"name": "bbands", "params": {"nbdev": 0}},
     "factor 'bbands': parameter 'nbdev' must be a finite number > 0, got 0.0"),
    ({"name": "bbands", "params": {"nbdev": float("nan")}}, "parameter 'nbdev'"),
    ({"name": "volatility", "params": {"window": 1}},
     "factor 'volatility': parameter 'window' must be an integer >= 2, got 1"),
    ({"name": "ret", "params": {"horizon": 0}},
     "factor 'ret': parameter 'horizon' must be an integer >= 1, got 0"),
])
def test_bad_values_are_refused_naming_factor_and_parameter(request_, message):
    with pytest.raises(FactorError) as info:
        resolve_spec(request_)
    assert message in str(info.value)


def test_good_values_pass_and_an_integral_float_becomes_an_int(make_ohlcv):
    spec = resolve_spec({"name": "rsi", "params": {"period": 7.0}})
    assert spec.params == {"period": 7} and spec.columns == ("rsi_7",)
    assert resolve_spec({"name": "bbands", "params": {"nbdev": 1}}).params["nbdev"] == 1.0
    frame = make_ohlcv(300, "BINANCE:BTCUSDT", seed=3)
    out = compute_factors(frame, [{"name": "rsi", "params": {"period": 2}},
                                  {"name": "macd", "params": {"fast": 2, "slow": 3,
                                                              "signal": 2}}])
    assert np.isfinite(out["rsi_2"].iloc[-1]) and np.isfinite(out["macd_2_3_2"].iloc[-1])


def test_the_limits_of_every_registered_parameter_admit_its_default():
    for name, fdef in list_factors().items():
        resolve_spec({"name": name, "params": dict(fdef.defaults)})  # defaults are valid
        for key in fdef.defaults:
            text = fdef.describe_param(key)
            assert text.startswith(f"{key}={fdef.defaults[key]!r} (")
    assert list_factors()["rsi"].describe_param("period") == "period=14 (int, 2..100000)"
    assert list_factors()["bbands"].describe_param("nbdev") == "nbdev=2.0 (float, > 0)"
    assert TALIB_PERIOD == (2, 100_000)


def test_the_cli_factor_list_is_checked_too(tmp_path):
    from research.cli import EXIT_INPUT, main

    code = main(["factors", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                 "2024-02-01", "--factors", "rsi:period=-5", "--synthetic-seed", "1",
                 "--out", str(tmp_path / "f.parquet"), "--quiet"])
    assert code == EXIT_INPUT
