"""Fixtures for the LSTM model tests: a tiny config and planted/noise feature frames."""

from __future__ import annotations

import pandas as pd
import pytest
from lstm_data import planted_ohlcv, tiny_config

from research.models import LSTMConfig, build_feature_frame, run_walk_forward, train_artifact


@pytest.fixture(scope="session")
def config() -> LSTMConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def planted_features(config: LSTMConfig) -> pd.DataFrame:
    return build_feature_frame(planted_ohlcv(n_bars=1500, phi=0.6, seed=7), config)


@pytest.fixture(scope="session")
def noise_features(config: LSTMConfig) -> pd.DataFrame:
    return build_feature_frame(planted_ohlcv(n_bars=1500, phi=0.0, seed=7), config)


@pytest.fixture(scope="session")
def planted_walk_forward(planted_features, config):
    return run_walk_forward(planted_features, config)


@pytest.fixture(scope="session")
def artifact(planted_features, config, planted_walk_forward):
    return train_artifact(planted_features, config, metrics=planted_walk_forward.metrics)
