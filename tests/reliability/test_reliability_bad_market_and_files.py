"""Bad market candles and bad CSV/Parquet files: a clear error naming the column and row,
and nothing written (the market store refuses a whole frame; it never half-writes one)."""

from __future__ import annotations

import pandas as pd
import pytest
from corpus import BAD_CANDLES, BAD_FILES, good_candles

from research.data.file_import import import_ohlcv_file
from research.data.market_store import upsert_candles
from signal_export.contract import ContractError


def stored(db) -> pd.DataFrame:
    docs = list(db["crypto_market_1m"].find({}, {"_id": 0}).sort([("symbol", 1),
                                                                  ("datetime", 1)]))
    return pd.DataFrame(docs)


@pytest.mark.parametrize("case", BAD_CANDLES, ids=[c.name for c in BAD_CANDLES])
def test_bad_candles_are_refused_by_name_and_nothing_is_written(mongo_db, case):
    upsert_candles(good_candles(3, "ETH/USDT"), mongo_db, "1m")
    before = stored(mongo_db)
    frame = case.edit(good_candles(6))
    with pytest.raises(ContractError) as info:
        upsert_candles(frame, mongo_db, "1m")
    message = str(info.value)
    for text in case.must_mention:
        assert text in message, message
    after = stored(mongo_db)
    pd.testing.assert_frame_equal(after, before)  # neither the good rows nor the bad one


def test_unsorted_candles_store_the_same_as_sorted(mongo_db):
    frame = good_candles(30)
    result = upsert_candles(frame.sample(frac=1.0, random_state=3), mongo_db, "1m")
    assert (result.inserted, result.updated) == (30, 0)
    got = stored(mongo_db)
    assert got["datetime"].is_monotonic_increasing and len(got) == 30
    assert got["open"].tolist() == frame["open"].tolist()


@pytest.mark.parametrize("case", BAD_FILES, ids=[c.name for c in BAD_FILES])
def test_bad_files_are_refused_by_name_and_nothing_is_written(mongo_db, tmp_path, case):
    path = tmp_path / f"candles{case.suffix}"
    if isinstance(case.content, pd.DataFrame):
        case.content.to_parquet(path)
    else:
        path.write_text(case.content)
    with pytest.raises(ContractError) as info:
        import_ohlcv_file(path, db=mongo_db, timeframe=case.timeframe)
    message = str(info.value)
    for text in case.must_mention:
        assert text in message, message
    for name in ("crypto_market", "crypto_market_1m"):
        assert mongo_db[name].count_documents({}) == 0
