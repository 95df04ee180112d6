"""CSV/Parquet import: column mapping, timezone rules, validation, idempotency."""

from __future__ import annotations

import pandas as pd
import pytest

from research.data.file_import import import_ohlcv_file, read_ohlcv_file
from research.data.readers import get_crypto_market_data, get_crypto_min_data
from research.data.synthetic import generate_symbol_ohlcv
from signal_export.contract import ContractError


@pytest.fixture
def btc(market) -> pd.DataFrame:
    return generate_symbol_ohlcv(market, "BTC/USDT", "2024-01-01T00:00Z", "2024-01-01T01:00Z")


def test_csv_with_mapped_columns_and_epoch_ms_round_trips(tmp_path, store, btc):
    path = tmp_path / "btc.csv"
    pd.DataFrame({"Open time": btc["datetime"].dt.as_unit("ms").array.asi8,
                  "O": btc["open"], "H": btc["high"], "L": btc["low"], "C": btc["close"],
                  "V": btc["volume"]}).to_csv(path, index=False)
    mapping = {"Open time": "timestamp", "O": "open", "H": "high", "L": "low", "C": "close",
               "V": "volume"}
    first = import_ohlcv_file(path, db=store, timeframe="1m", columns=mapping, symbol="BTC/USDT")
    again = import_ohlcv_file(path, db=store, timeframe="1m", columns=mapping, symbol="BTC/USDT")
    assert first.inserted == 60 and again.inserted == 0 and again.unchanged == 60
    got = get_crypto_min_data("BTC/USDT", "2024-01-01", "2024-01-01", db=store)
    pd.testing.assert_frame_equal(got, btc)


def test_naive_timestamps_need_an_explicit_timezone(tmp_path, store, btc):
    path = tmp_path / "local.csv"
    local = btc["datetime"].dt.tz_convert("Europe/Berlin").dt.tz_localize(None)
    btc.assign(datetime=local.dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(path, index=False)
    with pytest.raises(ContractError, match="naive timestamps.*tz="):
        import_ohlcv_file(path, db=store, timeframe="1m")
    assert store.collection("1m").count_documents({}) == 0
    import_ohlcv_file(path, db=store, timeframe="1m", tz="Europe/Berlin")
    got = get_crypto_min_data("BTC/USDT", "2024-01-01", "2024-01-01", db=store)
    assert got["datetime"].tolist() == btc["datetime"].tolist()  # 01:00 Berlin = 00:00 UTC


def test_offsets_in_strings_are_honoured(tmp_path, btc):
    path = tmp_path / "offset.csv"
    shifted = btc["datetime"].dt.tz_convert("Asia/Tokyo").map(lambda t: t.isoformat())
    btc.assign(datetime=shifted).to_csv(path, index=False)
    frame = read_ohlcv_file(path, timeframe="1m")
    assert frame["datetime"].tolist() == btc["datetime"].tolist()


def test_parquet_with_tz_aware_times_and_daily_dates(tmp_path, store, market):
    days = generate_symbol_ohlcv(market, "ETH/USDT", "2024-01-01T00:00Z", "2024-01-11T00:00Z",
                                 "1d")
    days.to_parquet(tmp_path / "eth.parquet")
    assert import_ohlcv_file(tmp_path / "eth.parquet", db=store, timeframe="1d").inserted == 10
    days.assign(datetime=days["datetime"].dt.strftime("%Y%m%d")).drop(columns="symbol").to_csv(
        tmp_path / "eth_days.csv", index=False)  # plain YYYYMMDD dates are UTC days
    again = import_ohlcv_file(tmp_path / "eth_days.csv", db=store, timeframe="1d",
                              symbol="BINANCE:ETHUSDT")
    assert again.unchanged == 10
    got = get_crypto_market_data("ETH/USDT", "20240101", "20240110", db=store)
    pd.testing.assert_frame_equal(got, days.rename(columns={"datetime": "date"}))


@pytest.mark.parametrize(("change", "kwargs", "message"), [
    (lambda f: f.drop(columns="close"), {}, "missing column.*close"),
    (lambda f: f.rename(columns={"datetime": "when"}), {}, "no time column"),
    (lambda f: f.drop(columns="symbol"), {}, "no symbol column"),
    (lambda f: f, {"symbol": "ETH/USDT"}, "also given"),
    (lambda f: f.assign(close="n/a"), {}, "'close' is not numeric"),
])
def test_bad_files_are_clear_errors(tmp_path, store, btc, change, kwargs, message):
    path = tmp_path / "bad.parquet"
    change(btc).to_parquet(path)
    with pytest.raises(ContractError, match=message):
        import_ohlcv_file(path, db=store, timeframe="1m", **kwargs)


def test_unsupported_file_types_are_refused(tmp_path, store):
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ContractError, match="unsupported file type"):
        import_ohlcv_file(tmp_path / "x.json", db=store, timeframe="1m")
