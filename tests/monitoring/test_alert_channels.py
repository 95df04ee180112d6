"""Alerts reach a local webhook (each payload shape) and a local SMTP server; secrets stay out."""

from __future__ import annotations

import logging

import pytest
from monitoring_data import T0
from receivers import smtp_receiver, webhook_receiver

from signal_export.monitoring.alerts import Condition, Rule
from signal_export.monitoring.channels import ChannelError, EmailChannel, WebhookChannel
from signal_export.monitoring.manager import AlertManager


def _lag_condition(firing: bool = True) -> Condition:
    return Condition(Rule.LAG_OVER_BUDGET, firing, T0, 95.0, 90.0,
                     "signal lag 95 s > one bar + export budget 30 s",
                     strategy_id="alpha", pair="BTC/USDT")


@pytest.mark.parametrize(("style", "field"), [("slack", "text"), ("discord", "content"),
                                               ("telegram", "text"), ("generic", "text")])
def test_webhook_delivers_the_payload_shape_of_each_style(monkeypatch, style, field):
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        channel = WebhookChannel("hook", url_env="TEST_HOOK_URL", style=style, chat_id="42")
        AlertManager([channel], clock=lambda: T0).process([_lag_condition()])
    (got,) = received
    body = got["json"]
    text = body[field]
    assert "[FIRING] lag_over_budget alpha BTC/USDT" in text
    assert "strategy_id=alpha pair=BTC/USDT time=2026-03-02T12:00:00+00:00" in text
    assert "value=95 threshold=90" in text
    if style == "telegram":
        assert body["chat_id"] == "42"
    if style == "generic":
        assert body["alert"]["rule"] == "lag_over_budget" and body["alert"]["value"] == 95.0
        assert body["alert"]["pair"] == "BTC/USDT" and body["alert"]["status"] == "firing"


def test_webhook_failure_is_reported_without_the_secret_url(monkeypatch, caplog):
    with webhook_receiver(status=403) as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        channel = WebhookChannel("hook", url_env="TEST_HOOK_URL")
        with pytest.raises(ChannelError) as err:
            channel.send(AlertManager([]).process([_lag_condition()])[0])
        manager = AlertManager([channel], clock=lambda: T0)
        with caplog.at_level(logging.ERROR):
            manager.process([_lag_condition()])
    assert len(received) == 2 and "HTTP 403" in str(err.value)
    assert "secret-token-123" not in str(err.value) and "secret-token-123" not in caplog.text
    assert manager.delivery_failures == 1


def test_missing_webhook_env_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_HOOK", raising=False)
    channel = WebhookChannel("ops", url_env="NO_SUCH_HOOK")
    with pytest.raises(ChannelError, match="NO_SUCH_HOOK is not set"):
        channel.send(AlertManager([]).process([_lag_condition()])[0])


def test_email_alert_and_resolve_reach_a_local_smtp_server():
    clock_now = [T0]
    with smtp_receiver() as (port, sink):
        channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="bridge@example.org",
                               recipients=["ops@example.org"])
        manager = AlertManager([channel], clock=lambda: clock_now[0])
        manager.process([_lag_condition(True)])
        manager.process([_lag_condition(False)])
    assert [m["Subject"] for m in sink.messages] == [
        "[FIRING] lag_over_budget alpha BTC/USDT", "[RESOLVED] lag_over_budget alpha BTC/USDT"]
    assert sink.envelopes[0] == ("bridge@example.org", ["ops@example.org"])
    body = sink.messages[0].get_payload(decode=True).decode()
    assert "strategy_id=alpha pair=BTC/USDT" in body and "value=95" in body


def test_email_to_a_closed_port_fails_with_a_clear_error():
    with smtp_receiver() as (port, _sink):
        pass  # stopped: nothing listens there any more
    channel = EmailChannel("mail", host="127.0.0.1", port=port, sender="a@b.c",
                           recipients=["d@e.f"], timeout_s=2)
    with pytest.raises(ChannelError, match="mail: delivery to 127.0.0.1"):
        channel.send(AlertManager([]).process([_lag_condition()])[0])


def test_a_pair_never_seen_infinite_lag_is_delivered_as_valid_json(monkeypatch):
    never = Condition(Rule.MISSING_SIGNALS, True, T0, float("inf"), 180.0,
                      "no 1m signal for SOL/USDT in 3 bars (newest ts never)",
                      strategy_id="alpha", pair="SOL/USDT")
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("TEST_HOOK_URL", url)
        manager = AlertManager([WebhookChannel("hook", url_env="TEST_HOOK_URL")],
                               clock=lambda: T0)
        manager.process([never])
    assert manager.delivery_failures == 0
    (got,) = received
    assert got["json"]["alert"]["value"] is None and "value=inf" in got["json"]["text"]
