"""Settings of the ingest API: keyword > environment > .env > defaults, bad values named."""

from __future__ import annotations

import pytest

from signal_export.ingest.config import IngestConfig, IngestConfigError, load_ingest_config


@pytest.fixture(autouse=True)
def no_ingest_env(monkeypatch) -> None:
    import os

    for name in [k for k in os.environ if k.startswith("EXT_SIG_INGEST_")]:
        monkeypatch.delenv(name)


def test_defaults_without_any_setting(tmp_path) -> None:
    assert load_ingest_config(tmp_path / "none.env") == IngestConfig()


def test_keyword_beats_environment_beats_env_file(tmp_path, monkeypatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("EXT_SIG_INGEST_GRACE_SECONDS=2\nEXT_SIG_INGEST_PORT=9001\n"
                        "EXT_SIG_INGEST_RATE_BURST=7\n")
    monkeypatch.setenv("EXT_SIG_INGEST_PORT", "9002")
    cfg = load_ingest_config(env_file, grace_seconds=1.5)
    assert (cfg.grace_seconds, cfg.port, cfg.rate_burst) == (1.5, 9002, 7)
    assert cfg.default_rate_limit.burst == 7


@pytest.mark.parametrize(("var", "value"), [
    ("EXT_SIG_INGEST_PORT", "http"), ("EXT_SIG_INGEST_GRACE_SECONDS", "-1"),
    ("EXT_SIG_INGEST_MAX_BODY_BYTES", "0"), ("EXT_SIG_INGEST_RATE_PER_SECOND", "0"),
])
def test_a_bad_value_names_its_variable(tmp_path, monkeypatch, var, value) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(IngestConfigError, match=var):
        load_ingest_config(tmp_path / "none.env")


def test_an_unknown_keyword_is_a_type_error(tmp_path) -> None:
    with pytest.raises(TypeError, match="grace"):
        load_ingest_config(tmp_path / "none.env", grace=1)
