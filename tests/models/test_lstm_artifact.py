"""Model artefact: round trip, content-hash version, feature-list checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lstm_data import planted_ohlcv

from research.models import (
    ArtifactError,
    FeatureMismatchError,
    build_feature_frame,
    load_artifact,
    predict_history,
    predict_latest,
    save_artifact,
)


def test_round_trip_keeps_weights_scaler_metadata_and_predictions(artifact, config, tmp_path):
    path = save_artifact(artifact, tmp_path / "m" / "lstm.pt")
    loaded = load_artifact(path, features=artifact.feature_columns)
    assert loaded.content_hash == artifact.content_hash
    assert loaded.version == artifact.version >= 1
    assert loaded.feature_columns == ["ret_1", "zscore_10", "rsi_14"]
    assert loaded.config == config
    assert loaded.metrics["oos_auc"] == artifact.metrics["oos_auc"]
    assert loaded.data_range["symbols"] == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    np.testing.assert_array_equal(loaded.scaler.mean, artifact.scaler.mean)
    frame = build_feature_frame(planted_ohlcv(n_bars=200, seed=5), config)
    np.testing.assert_array_equal(predict_history(loaded, frame)["probability"],
                                  predict_history(artifact, frame)["probability"])


def test_loading_with_a_different_feature_list_fails_naming_both(artifact, tmp_path):
    path = save_artifact(artifact, tmp_path / "lstm.pt")
    with pytest.raises(FeatureMismatchError, match=r"trained on features \['ret_1', "
                                                   r"'zscore_10', 'rsi_14'\].*'ret_1', 'rsi_7'"):
        load_artifact(path, features=["ret_1", "rsi_7"])


def test_predicting_on_data_without_a_model_feature_names_it(artifact, config):
    frame = build_feature_frame(planted_ohlcv(n_bars=100, seed=5), config)
    with pytest.raises(FeatureMismatchError, match=r"needs feature column\(s\) \['zscore_10'\]"):
        predict_latest(artifact, frame.drop(columns=["zscore_10"]))


def test_edited_weights_are_refused_by_the_content_hash(artifact, tmp_path):
    path = save_artifact(artifact, tmp_path / "lstm.pt")
    payload = torch.load(path, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1.0
    torch.save(payload, path)
    with pytest.raises(ArtifactError, match="content hash mismatch"):
        load_artifact(path)


@pytest.mark.parametrize("content", [b"not a model at all", b"PK\x03\x04truncated zip", b""])
def test_a_corrupt_file_is_a_clear_error_not_a_traceback(tmp_path, content):
    path = tmp_path / "lstm.pt"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match="is not readable"):
        load_artifact(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope.pt")


def test_newest_bar_batch_equals_last_row_of_history(artifact, config):
    frame = build_feature_frame(planted_ohlcv(n_bars=120, seed=5), config)
    latest = predict_latest(artifact, frame)
    history = predict_history(artifact, frame)
    last = history.groupby("symbol").tail(1).reset_index(drop=True)
    assert latest["symbol"].tolist() == last["symbol"].tolist() == sorted(frame["symbol"].unique())
    assert (latest["datetime"] == frame["datetime"].max()).all()
    np.testing.assert_allclose(latest["probability"], last["probability"], rtol=0, atol=1e-6)
    # a symbol whose newest window is broken is reported, not silently dropped
    broken = frame.copy()
    newest_btc = (broken["symbol"] == "BINANCE:BTCUSDT") & (
        broken["datetime"] == broken["datetime"].max())
    broken.loc[newest_btc, "ret_1"] = np.nan
    partial = predict_latest(artifact, broken)
    assert partial["symbol"].tolist() == ["BINANCE:ETHUSDT"]
    assert partial.attrs["skipped"] == ["BINANCE:BTCUSDT"]


def test_version_grows_with_the_training_range(artifact):
    """The exporter keeps the higher version per key, so a retrain on newer data must win."""
    import dataclasses

    later_end = (pd.Timestamp(artifact.data_range["end"]) + pd.Timedelta(hours=1)).isoformat()
    retrained = dataclasses.replace(artifact, data_range={**artifact.data_range, "end": later_end})
    assert retrained.version > artifact.version >= 1
    assert retrained.version < 2**53  # JSON- and BSON-safe
