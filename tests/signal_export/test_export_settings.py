"""Settings precedence and secret redaction."""

from __future__ import annotations

import logging

import pytest

from signal_export.contract import ContractError
from signal_export.logs import SecretRedactingFilter, redact_uri
from signal_export.settings import (
    ENV_VARS,
    Settings,
    load_settings,
)


@pytest.fixture
def clean_env(monkeypatch):
    for env in ENV_VARS.values():
        monkeypatch.delenv(env, raising=False)
    return monkeypatch


def test_defaults_without_env_or_file(clean_env, tmp_path):
    s = load_settings(tmp_path / "missing.env")
    assert s == Settings()
    assert (s.collection, s.export_runs_collection, s.market_1m_collection) == (
        "crypto_signals", "export_runs", "crypto_market_1m")
    assert s.market_uri == s.mongo_uri


def test_env_beats_dotenv_file_and_overrides_beat_env(clean_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("EXT_SIG_DB=from_file\nEXT_SIG_COLLECTION=file_coll\n"
                        "EXT_SIG_STRATEGY_ID=a, b ,c\nEXT_SIG_TTL_SECONDS=3600\n"
                        "EXT_SIG_QUOTES=usdt,btc\nMARKET_DB=mkt\n")
    clean_env.setenv("EXT_SIG_DB", "from_env")
    s = load_settings(env_file, collection="explicit")
    assert (s.db, s.collection, s.market_db) == ("from_env", "explicit", "mkt")
    assert s.strategy_ids == ("a", "b", "c")
    assert s.signals_ttl_seconds == 3600 and s.quotes == ("USDT", "BTC")


def test_bad_numbers_are_reported_by_variable_name(clean_env):
    clean_env.setenv("EXT_SIG_BATCH_SIZE", "lots")
    with pytest.raises(ContractError, match="EXT_SIG_BATCH_SIZE"):
        load_settings(None)


@pytest.mark.parametrize(("uri", "expected"), [
    ("mongodb://user:s3cr3t@host:27017/db", "mongodb://user:***@host:27017/db"),
    ("mongodb+srv://u:p%40ss@cluster.example.net/?x=1",
     "mongodb+srv://u:***@cluster.example.net/?x=1"),
    ("mongodb://host:27017", "mongodb://host:27017"),
    ("connect mongodb://a:b@h1,h2/?password=zz&w=1 failed",
     "connect mongodb://a:***@h1,h2/?password=***&w=1 failed"),
])
def test_redact_uri_masks_passwords(uri, expected):
    assert redact_uri(uri) == expected


def test_settings_can_be_printed_without_secrets(clean_env):
    s = load_settings(None, mongo_uri="mongodb://u:topsecret@h/")
    assert "topsecret" not in repr(s.redacted())


def test_logging_filter_redacts_messages_and_arguments(caplog):
    logger = logging.getLogger("test.redaction")
    logger.addFilter(SecretRedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("connecting to %s", "mongodb://exporter:hunter2@db:27017")
        logger.info("plain mongodb://reader:pw@db message")
    text = caplog.text
    assert "hunter2" not in text and ":pw@" not in text
    assert "mongodb://exporter:***@db:27017" in text and "mongodb://reader:***@db" in text
