"""The futures risk fields read beside the signals (signal_export/consumer/risk.py), against
the MongoDB dev server: joined by document key, absent values NaN, values outside the
contract drop the signal with one warning naming the field."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np

from signal_export.consumer.normalise import normalise_signals
from signal_export.consumer.risk import RiskReader

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
PAIR = "BTC/USDT:USDT"


def doc(i: int, action: str, **risk) -> dict:
    return {"pair": PAIR, "strategy_id": "fut", "timeframe": "1h", "ts": T0 + i * H,
            "action": action, "version": 1, **risk}


def test_risk_fields_join_the_signals_and_bad_values_drop_the_signal(mongo_client, caplog):
    coll = mongo_client["risk_futures"]["crypto_signals"]
    coll.drop()
    docs = [doc(1, "enter_short", leverage=2.0, stop_loss=0.03, take_profit=0.05),
            doc(2, "exit_short"),
            doc(3, "enter_long", leverage=4.0, stop_loss=0.3),  # 0.3 x 4 >= 1: never fills
            doc(4, "enter_short", take_profit=1.5),  # a short cannot gain 150 %
            doc(5, "enter_long", stop_loss="5%"),
            doc(6, "enter_long", take_profit=0.1)]
    coll.insert_many([dict(d) for d in docs])
    reader = RiskReader(["fut"], "1h", lambda: coll)
    with caplog.at_level(logging.WARNING, logger="signal_export.consumer.risk"):
        reader.load({PAIR}, T0, T0 + 10 * H)
        reader.load({PAIR}, T0, T0 + 10 * H)  # warned once per reason
    assert len(reader.frame) == 5  # only documents carrying a risk field
    out = reader.attach(normalise_signals(docs, pairs={PAIR}))
    assert out["ts"].tolist() == [T0 + i * H for i in (1, 2, 6)]
    assert out[["leverage", "stop_loss", "take_profit"]].iloc[0].tolist() == [2.0, 0.03, 0.05]
    assert np.isnan(out["leverage"].iloc[1]) and out["take_profit"].iloc[2] == 0.1
    assert reader.read_counts == {PAIR: {"malformed": 3}}  # per read, not per use
    text = caplog.text
    assert "stop_loss not a number > 0 with stop_loss * leverage < 1" in text
    assert "take_profit not a number > 0 (< 1 on a short)" in text
    assert caplog.text.count("stop_loss not a number") == 1
