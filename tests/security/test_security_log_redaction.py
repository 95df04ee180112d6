"""No secret reaches a log line, whatever path the record takes (SPEC §7, issue 10).

Each secret is logged through every logger path — message args, %-format,
exception with traceback, ``extra`` fields, a child logger, third-party
loggers (pymongo, ccxt, freqtrade) and Freqtrade's own ``setup_logging``
(file handler, buffer handler for the REST ``/log`` endpoint) — in text and
JSON mode; the output must contain none of them and must still say what
happened.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from signal_export.logs import (
    MASK,
    configure_logging,
    install_redaction_filter,
    redact_text,
    register_config_secrets,
)

# Fake secret values shaped like real ones; each is unique so a leak is unambiguous.
MONGO_PW = "Mg0-pw-7f3a9c"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOrAk7Lm2Q"  # pragma: allowlist secret
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjIn"  # pragma: allowlist secret
JWT_SECRET = "jwt-Secret-key-that-is-long-enough-1234"  # pragma: allowlist secret
API_SERVER_PW = "ApiSrv-pw-4c1d"
SLACK_TOKEN = "XyZ9aBcDeFgHiJkLmNoPqRsT"
DISCORD_TOKEN = "dIsCoRd-ToKeN_abcdef0123456789"
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"  # pragma: allowlist secret
SMTP_PW = "Smtp-pw-77e1"
BEARER = "ingest-tok-5b8e2c9d4f"
A_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2lnbmF0dXJlLXZhbHVl"  # pragma: allowlist secret

SECRET_TEXTS = {
    "mongo uri": f"mongodb://signal_exporter:{MONGO_PW}@db:27017/?authSource=admin",
    "exchange key": f"apiKey={API_KEY}",
    "exchange secret": f"{{'secret': '{API_SECRET}'}}",
    "ccxt header": f"X-MBX-APIKEY: {API_KEY}",
    "jwt secret": f'"jwt_secret_key": "{JWT_SECRET}"',
    "api server password": f"password={API_SERVER_PW}",
    "slack webhook": f"https://hooks.slack.com/services/T0001/B0001/{SLACK_TOKEN}",
    "discord webhook": f"https://discord.com/api/webhooks/112233445566/{DISCORD_TOKEN}",
    "telegram bot url": f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage",
    "smtp uri": f"smtp://alerts@example.org:{SMTP_PW}@mail.example.org:587",
    "unescaped @ in a uri password": f"mongodb://exporter:a@{MONGO_PW}@db:27017/",
    "smtp password field": f"smtp_password: {SMTP_PW}",
    "bearer token": f"Authorization: Bearer {BEARER}",
    "a jwt": f"token {A_JWT}",
}
SECRET_VALUES = [MONGO_PW, API_KEY, API_SECRET, JWT_SECRET, API_SERVER_PW, SLACK_TOKEN,
                 DISCORD_TOKEN, TELEGRAM_TOKEN, SMTP_PW, BEARER, A_JWT]


@pytest.fixture
def clean_logging():
    """Restore the root logger after a test that reconfigures it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _assert_clean(output: str) -> None:
    leaked = [v for v in SECRET_VALUES if v in output]
    assert not leaked, f"secrets leaked: {leaked}\n{output}"


@pytest.mark.parametrize("name", sorted(SECRET_TEXTS))
def test_each_secret_shape_is_masked(name):
    redacted = redact_text(f"connecting with {SECRET_TEXTS[name]} now")
    _assert_clean(redacted)
    assert MASK in redacted and redacted.startswith("connecting with ")


def _log_everything(secret: str) -> None:
    log = logging.getLogger("signal_export.exporter")
    log.info("connecting to %s", secret)
    log.warning("config: %(cfg)s", {"cfg": secret})
    log.error("plain message with the secret inline: " + secret)
    logging.getLogger("signal_export.exporter.child.grandchild").info("child %s", secret)
    log.info("with extra", extra={"uri": secret, "password": "x", "headers": {"auth": secret}})
    try:
        raise ConnectionError(f"could not reach {secret}")
    except ConnectionError:
        log.exception("export failed")
    try:
        try:
            raise ValueError(secret)
        except ValueError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError:
        logging.getLogger("pymongo.command").debug("failure", exc_info=True)
    logging.getLogger("ccxt.base.exchange").debug("request headers %r", {"X-MBX-APIKEY": secret})
    logging.getLogger("freqtrade.rpc.webhook").info("sending to %s", secret)
    logging.getLogger("apscheduler.executors").warning("job %s", secret, stack_info=True)
    logging.getLogger().critical("root %s", secret)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_configure_logging_masks_every_logger_path(clean_logging, as_json):
    stream = io.StringIO()
    configure_logging("DEBUG", json=as_json, stream=stream)
    for secret in SECRET_TEXTS.values():
        _log_everything(secret)
    output = stream.getvalue()
    _assert_clean(output)
    assert "export failed" in output and "Traceback" in output and "ConnectionError" in output
    assert "could not reach" in output and MASK in output
    if as_json:
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
        assert any(x.get("password") == MASK for x in lines)


def test_freqtrade_setup_logging_with_filter_installed_masks_config_secrets(clean_logging,
                                                                             tmp_path):
    from freqtrade.loggers import bufferHandler, setup_logging

    logfile = tmp_path / "freqtrade.log"
    setup_logging({"verbosity": 1, "logfile": str(logfile), "ft_tests_force_logging": True})
    config = {"exchange": {"key": API_KEY, "secret": API_SECRET},
              "api_server": {"password": API_SERVER_PW, "jwt_secret_key": JWT_SECRET},
              "telegram": {"token": TELEGRAM_TOKEN}}
    install_redaction_filter(config)  # what ExternalSignalStrategy does when Freqtrade loads it
    buffered_before = len(bufferHandler.buffer)
    ft = logging.getLogger("freqtrade.freqtradebot")
    ft.info("exchange key %s secret %s", API_KEY, API_SECRET)  # bare values, no key= shape
    ft.info("api server login %s / %s", API_SERVER_PW, JWT_SECRET)
    logging.getLogger("freqtrade.strategy.ExternalSignalStrategy").warning(
        "mongo %s", SECRET_TEXTS["mongo uri"])
    try:
        raise PermissionError(f"telegram {TELEGRAM_TOKEN} refused")
    except PermissionError:
        logging.getLogger("freqtrade.rpc.telegram").exception("telegram down")
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = logfile.read_text()
    buffered = "\n".join(bufferHandler.format(r) + (r.exc_text or "")
                         for r in bufferHandler.buffer[buffered_before:])
    _assert_clean(written + buffered)
    assert "telegram down" in written and "exchange key ***" in written
    assert "telegram down" in buffered


def test_strategy_module_installs_the_filter_when_freqtrade_loads_it(clean_logging, tmp_path):
    from freqtrade.loggers import setup_logging

    logfile = tmp_path / "ft.log"
    setup_logging({"verbosity": 0, "logfile": str(logfile), "ft_tests_force_logging": True})
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "user_data/strategies/ExternalSignalStrategy.py"
    spec = importlib.util.spec_from_file_location("ExternalSignalStrategy_redaction_probe", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    logging.getLogger("freqtrade").info("uri %s", SECRET_TEXTS["mongo uri"])
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert MONGO_PW not in logfile.read_text(), (
        "ExternalSignalStrategy.py must call signal_export.logs.install_redaction_filter() at "
        "import (and install_redaction_filter(config) in __init__)")


def test_registered_config_secrets_are_masked_as_bare_values():
    register_config_secrets({"exchange": {"key": "bare-Key-0xdeadbeef", "secret": ""}})
    assert redact_text("sent bare-Key-0xdeadbeef to exchange") == "sent *** to exchange"


def test_ordinary_messages_are_left_alone():
    text = "export 3f2a ok: 120 inserted, 0 updated; token count 5; Basic checks passed"
    assert redact_text(text) == text


def test_unknown_log_level_is_a_clear_error(clean_logging):
    with pytest.raises(ValueError, match="unknown level 'LOUD'"):
        configure_logging("LOUD")


def test_the_working_directory_is_not_taken_for_a_password(clean_logging, monkeypatch):
    """``PWD``/``OLDPWD`` are paths, not passwords: neither the variables nor ``PWD=...`` text
    are masked, while a real ``*_PWD``/``*_PASSWORD`` variable still is."""
    from signal_export.logs import SECRET_NAME_RE, register_env_secrets

    cwd = "/home/trader/bridge-workdir"
    register_env_secrets({"PWD": cwd, "OLDPWD": cwd + "-old", "DB_PWD": "db-Pwd-31337",
                          "MONGO_EXPORTER_PASSWORD": "exp-Pw-4242"})
    line = f"loading {cwd}/user_data/config.json PWD={cwd} OLDPWD={cwd}-old"
    assert redact_text(line) == line
    assert "db-Pwd-31337" not in redact_text("pw db-Pwd-31337 and exp-Pw-4242")
    assert "exp-Pw-4242" not in redact_text("exp-Pw-4242")
    assert not SECRET_NAME_RE.match("PWD") and not SECRET_NAME_RE.match("OLDPWD")
    for name in ("DB_PWD", "password", "FREQTRADE__API_SERVER__PASSWORD", "jwt_secret_key",
                 "X-MBX-APIKEY", "ws_token", "ALERT_SLACK_WEBHOOK_URL", "credentials"):
        assert SECRET_NAME_RE.match(name), name
    for name in ("token_count", "passage", "keyboard", "secretary_name",
                 "EXT_SIG_INGEST_TOKENS_FILE"):
        assert not SECRET_NAME_RE.match(name), name
