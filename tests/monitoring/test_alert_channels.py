"""Alerts reach a local webhook (each payload shape) and a local SMTP server as ONE grouped
message per cycle and channel; channels are checked before the monitor starts; SMTP is
encrypted unless configured otherwise; secrets stay out of errors and logs."""

from __future__ import annotations

import logging

import pytest
from monitoring_data import T0
from receivers import smtp_receiver, webhook_receiver

from signal_export.monitoring.alerts import Condition, Rule, Unit
from signal_export.monitoring.channels import (
    ChannelError,
    EmailChannel,
    WebhookChannel,
    build_channels,
    check_channels,
    default_security,
)
from signal_export.monitoring.config import MonitorConfigError, parse_monitor_config
from signal_export.monitoring.manager import AlertManager

PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")


def _lag(pair: str = "BTC/USDT", firing: bool = True, lag: float = 95.0) -> Condition:
    return Condition(Rule.LAG_OVER_BUDGET, firing, T0, lag, 90.0,
                     f"signal lag {lag:.0f} s > one bar + export budget 30 s",
                     strategy_id="alpha", pair=pair, unit=Unit.SECONDS)


def _balance(firing: bool = True) -> Condition:
    return Condition(Rule.LOW_BALANCE, firing, T0, 12.5, 50.0, "free USDT balance 12.5 on bot b1",
                     subject="b1")


@pytest.mark.parametrize(("style", "field"), [("slack", "text"), ("discord", "content"),
                                               ("telegram", "text"), ("generic", "text")])
def test_webhook_gets_one_grouped_message_in_the_shape_of_its_style(monkeypatch, style, field):
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        channel = WebhookChannel("hook", url_env="TEST_HOOK_URL", style=style, chat_id="42")
        AlertManager([channel], clock=lambda: T0).process(
            [_lag("BTC/USDT"), _lag("ETH/USDT", lag=7500.0), _balance()])
    (got,) = received  # three alerts, one POST
    body = got["json"]
    text = body[field]
    assert text.startswith("[FIRING 3] signal-bridge: lag_over_budget x2, low_balance"), text
    assert "- lag_over_budget alpha BTC/USDT [warning]: signal lag 95 s" in text
    assert "(value 1 min 35 s, limit 1 min 30 s)" in text
    assert "(value 2 h 5 min, limit 1 min 30 s)" in text  # 7500 s, humanised
    assert "- low_balance b1 [warning]: free USDT balance 12.5 on bot b1 (value 12.5, " \
           "limit 50)" in text
    assert "2026-03-02 12:00:00 UTC" in text
    if style == "telegram":
        assert body["chat_id"] == "42"
    if style == "generic":
        assert body["firing"] == 3 and body["resolved"] == 0
        alerts = {a["pair"] or a["subject"]: a for a in body["alerts"]}
        assert alerts["ETH/USDT"]["rule"] == "lag_over_budget"
        assert alerts["ETH/USDT"]["value"] == 7500.0
        assert alerts["ETH/USDT"]["value_text"] == "2 h 5 min"
        assert alerts["b1"]["status"] == "firing"


def test_eight_alerts_on_four_channels_make_four_posts_not_thirty_two(monkeypatch):
    """The storm of issue 19: 8 alerts x 4 channels was 32 POSTs per cycle."""
    conditions = [_lag(p) for p in PAIRS] + [
        Condition(Rule.MISSING_SIGNALS, True, T0, 600.0, 180.0, f"no 1m signal for {p}",
                  strategy_id="beta", pair=p, severity="critical", unit=Unit.SECONDS)
        for p in PAIRS]
    with webhook_receiver() as (url, received):
        for i in range(4):
            monkeypatch.setenv(f"TEST_HOOK_{i}", f"{url}/{i}")
        manager = AlertManager([WebhookChannel(f"hook{i}", url_env=f"TEST_HOOK_{i}")
                                for i in range(4)], clock=lambda: T0)
        sent = manager.process(conditions)
        assert len(sent) == 8
        assert len(received) == 4
        assert sorted(r["path"][-1] for r in received) == ["0", "1", "2", "3"]
        assert all(len(r["json"]["alerts"]) == 8 for r in received)
        text = received[0]["json"]["text"]
        # critical first, then by rule and subject
        assert text.startswith("[FIRING 8] signal-bridge: missing_signals x4, lag_over_budget x4")
        assert text.index("missing_signals beta XRP/USDT") < text.index("lag_over_budget alpha")
        manager.process(conditions)  # still firing, inside the cooldown: nothing new
        assert len(received) == 4


def test_fired_and_resolved_alerts_of_one_cycle_share_one_message(monkeypatch):
    clock_now = [T0]
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        manager = AlertManager([WebhookChannel("hook", url_env="TEST_HOOK_URL", style="slack")],
                               clock=lambda: clock_now[0])
        manager.process([_lag("BTC/USDT"), _lag("ETH/USDT"), _balance(False)])
        clock_now[0] = T0.replace(minute=7, second=30)
        manager.process([_lag("BTC/USDT", firing=False), _lag("ETH/USDT"), _balance()])
    assert len(received) == 2
    text = received[1]["json"]["text"]
    assert text.startswith("[FIRING 1, RESOLVED 1] signal-bridge: lag_over_budget, "
                           "low_balance"), text
    assert "RESOLVED (1)\n- lag_over_budget alpha BTC/USDT: resolved after 7 min 30 s " \
           "(firing since 2026-03-02 12:00:00 UTC)" in text
    assert "still firing, notified before: 1" in text  # ETH: not repeated, not forgotten


def test_webhook_failure_is_reported_without_the_secret_url(monkeypatch, caplog):
    with webhook_receiver(status=403) as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        channel = WebhookChannel("hook", url_env="TEST_HOOK_URL")
        manager = AlertManager([channel], clock=lambda: T0)
        with caplog.at_level(logging.ERROR):
            manager.process([_lag()])
        with pytest.raises(ChannelError) as err:
            channel.send(manager.last_notification)
    assert len(received) == 2 and "HTTP 403" in str(err.value)
    assert "secret-token-123" not in str(err.value) and "secret-token-123" not in caplog.text
    assert manager.delivery_failures == 1 and manager.failed == {"hook": 1}


def test_channel_problems_are_found_before_anything_is_sent(monkeypatch, tmp_path):
    monkeypatch.delenv("NO_SUCH_HOOK", raising=False)
    monkeypatch.delenv("NO_SUCH_SMTP_PW", raising=False)
    monkeypatch.setenv("NOT_A_URL", "hooks.example/abc")
    config = parse_monitor_config({"channels": [
        {"kind": "webhook", "name": "ops", "url_env": "NO_SUCH_HOOK"},
        {"kind": "webhook", "name": "typo", "url_env": "NOT_A_URL"},
        {"kind": "email", "name": "mail", "host": "smtp.example.org", "sender": "a@b.c",
         "recipients": ["d@e.f"], "username": "a@b.c", "password_env": "NO_SUCH_SMTP_PW"},
        {"kind": "email", "name": "ca", "host": "smtp.example.org", "sender": "a@b.c",
         "recipients": ["d@e.f"], "ca_file": str(tmp_path / "missing.pem")}]})
    problems = check_channels(build_channels(config.channels))
    assert problems == [
        "webhook ops: environment variable NO_SUCH_HOOK is not set (nor NO_SUCH_HOOK_FILE)",
        "webhook typo: $NOT_A_URL is not an http(s) URL",
        "email mail: environment variable NO_SUCH_SMTP_PW is not set (nor NO_SUCH_SMTP_PW_FILE)",
        f"email ca: ca_file {tmp_path / 'missing.pem'} does not exist"]
    monkeypatch.setenv("NO_SUCH_HOOK", "https://hooks.example/T0k")
    assert check_channels(build_channels(config.channels[:1])) == []


@pytest.mark.parametrize(("channel", "error"), [
    ({"kind": "webhook", "name": "w"}, "webhook w: set url_env"),
    ({"kind": "webhook", "name": "t", "style": "telegram", "url_env": "X"},
     "style telegram needs chat_id"),
    ({"kind": "email", "host": "", "sender": "a@b.c", "recipients": ["d@e.f"]}, "host"),
    ({"kind": "email", "host": "h", "sender": "a@b.c", "recipients": ["d@e.f"],
      "username": "u"}, "username and password_env go together"),
])
def test_incomplete_channel_config_is_a_config_error(channel, error):
    with pytest.raises(MonitorConfigError, match=error):
        parse_monitor_config({"channels": [channel]})


def test_smtp_is_encrypted_by_default():
    assert default_security(587) == "starttls" and default_security(25) == "starttls"
    assert default_security(465) == "ssl"
    assert EmailChannel("m", host="h", sender="a", recipients=["b"]).security == "starttls"
    assert parse_monitor_config({"channels": [
        {"kind": "email", "host": "h", "sender": "a@b.c", "recipients": ["d@e.f"]}]}
    ).channels[0].port == 587


def test_starttls_by_default_the_password_only_travels_encrypted(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_SMTP_PW", "smtp-Pw-not-in-clear")  # pragma: allowlist secret
    with smtp_receiver(tls="starttls", cert_dir=tmp_path) as (port, sink):
        channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="bridge@example.org",
                               recipients=["ops@example.org"], username="bridge",
                               password_env="TEST_SMTP_PW", ca_file=sink.ca_file)
        assert channel.security == "starttls"
        channel.check()
        manager = AlertManager([channel], clock=lambda: T0)
        manager.process([_lag(), _balance()])
    assert manager.delivery_failures == 0
    assert sink.logins == [("bridge", "smtp-Pw-not-in-clear", True)]
    assert sink.encrypted == [True]
    assert sink.messages[0]["Subject"] == "[FIRING 2] signal-bridge: lag_over_budget, low_balance"


def test_implicit_tls_on_465_style_servers(tmp_path):
    with smtp_receiver(tls="implicit", cert_dir=tmp_path) as (port, sink):
        channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="a@b.c",
                               recipients=["d@e.f"], security="ssl", ca_file=sink.ca_file)
        AlertManager([channel], clock=lambda: T0).process([_lag()])
    assert sink.encrypted == [True] and len(sink.messages) == 1


def test_a_server_without_starttls_gets_nothing_unless_plain_is_configured(tmp_path):
    with smtp_receiver() as (port, sink):  # plain SMTP, no STARTTLS offered
        default = EmailChannel("mail", host="127.0.0.1", port=port, sender="a@b.c",
                               recipients=["d@e.f"])
        manager = AlertManager([default], clock=lambda: T0)
        manager.process([_lag()])
        assert manager.failed == {"mail": 1} and sink.messages == []
        with pytest.raises(ChannelError, match=r"mail: delivery to 127.0.0.1:\d+ \(starttls\)"):
            default.send(manager.last_notification)
        plain = EmailChannel("mail", host="127.0.0.1", port=port, sender="a@b.c",
                             recipients=["d@e.f"], security="none")
        plain.send(manager.last_notification)
    assert len(sink.messages) == 1 and sink.encrypted == [False]


def test_email_alert_and_resolve_reach_a_local_smtp_server():
    clock_now = [T0]
    with smtp_receiver() as (port, sink):
        channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="bridge@example.org",
                               recipients=["ops@example.org"], security="none")
        manager = AlertManager([channel], clock=lambda: clock_now[0])
        manager.process([_lag(firing=True)])
        clock_now[0] = T0.replace(hour=14, minute=5)
        manager.process([_lag(firing=False)])
    assert [m["Subject"] for m in sink.messages] == [
        "[FIRING] lag_over_budget alpha BTC/USDT", "[RESOLVED] lag_over_budget alpha BTC/USDT"]
    assert sink.envelopes[0] == ("bridge@example.org", ["ops@example.org"])
    body = sink.messages[0].get_payload(decode=True).decode()
    assert "signal lag 95 s" in body and "value 1 min 35 s, limit 1 min 30 s" in body
    resolved = sink.messages[1].get_payload(decode=True).decode()
    assert "resolved after 2 h 5 min (firing since 2026-03-02 12:00:00 UTC)" in resolved


def test_email_to_a_closed_port_fails_with_a_clear_error():
    with smtp_receiver() as (port, _sink):
        pass  # stopped: nothing listens there any more
    channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="a@b.c",
                           recipients=["d@e.f"], timeout_s=2)
    manager = AlertManager([], clock=lambda: T0)
    manager.process([_lag()])
    with pytest.raises(ChannelError, match="mail: delivery to 127.0.0.1"):
        channel.send(manager.last_notification)


def test_a_pair_never_seen_reads_never_and_is_valid_json(monkeypatch):
    never = Condition(Rule.MISSING_SIGNALS, True, T0, float("inf"), 180.0,
                      "no 1m signal for SOL/USDT in 3 bars (newest signal: never)",
                      strategy_id="alpha", pair="SOL/USDT", unit=Unit.SECONDS)
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        manager = AlertManager([WebhookChannel("hook", url_env="TEST_HOOK_URL")],
                               clock=lambda: T0)
        manager.process([never])
    assert manager.delivery_failures == 0
    (got,) = received
    alert = got["json"]["alerts"][0]
    assert alert["value"] is None and alert["value_text"] == "never"
    text = got["json"]["text"]
    assert "value never, limit 3 min" in text
    assert "inf" not in text.replace("info", "")
