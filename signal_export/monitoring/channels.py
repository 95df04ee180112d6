"""Alert delivery: a generic JSON webhook (Slack/Discord/Telegram payload shapes) and SMTP email.

Secrets (webhook URLs with tokens, SMTP passwords) are read from environment
variables named in the config (or their ``_FILE`` form, a mounted secret
file) at send time, registered with the log
redaction, and never put into a log line or an exception message. Not the
decision what to send (:mod:`.manager`).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Literal

import httpx

from signal_export.logs import register_secret
from signal_export.monitoring.alerts import Alert
from signal_export.security.secrets import SecretError, env_value

WebhookStyle = Literal["generic", "slack", "discord", "telegram"]


class ChannelError(RuntimeError):
    """Delivery failed; the message never contains the secret URL or password."""


def _secret(value: str | None, env: str | None, what: str) -> str | None:
    if env:
        try:
            value = env_value(env) or value
        except SecretError as exc:
            raise ChannelError(f"{what}: {exc}") from None
        if not value:
            raise ChannelError(f"{what}: environment variable {env} is not set (nor {env}_FILE)")
    register_secret(value)
    return value


def webhook_payload(alert: Alert, style: WebhookStyle, chat_id: str | None = None
                    ) -> dict[str, Any]:
    """The JSON body for ``style``: Slack ``text``, Discord ``content``, Telegram
    ``chat_id``+``text``; ``generic`` carries the text and every field of the alert."""
    text = alert.message()
    if style == "slack":
        return {"text": text}
    if style == "discord":
        return {"content": text[:2000]}
    if style == "telegram":
        if not chat_id:
            raise ChannelError("telegram webhook needs chat_id")
        return {"chat_id": chat_id, "text": text[:4096]}
    return {"text": text, "alert": alert.as_dict()}


class WebhookChannel:
    """POST the alert as JSON to a URL (from ``url`` or the env variable ``url_env``)."""

    def __init__(self, name: str, *, url: str | None = None, url_env: str | None = None,
                 style: WebhookStyle = "generic", chat_id: str | None = None,
                 timeout_s: float = 5.0, retries: int = 2) -> None:
        self.name = name
        self._url = url
        self._url_env = url_env
        self.style = style
        self.chat_id = chat_id
        self.timeout_s = timeout_s
        self.retries = retries

    def send(self, alert: Alert) -> None:
        url = _secret(self._url, self._url_env, f"webhook {self.name}")
        assert url is not None
        body = webhook_payload(alert, self.style, self.chat_id)
        last = "no attempt"
        for _ in range(self.retries + 1):
            try:
                resp = httpx.post(url, json=body, timeout=self.timeout_s)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                continue
            if resp.status_code < 300:
                return
            last = f"HTTP {resp.status_code}"
            if resp.status_code < 500 and resp.status_code != 429:
                break
        raise ChannelError(f"webhook {self.name}: delivery failed ({last})")


class EmailChannel:
    """Send the alert as a plain-text email through SMTP (optionally STARTTLS/SSL + login)."""

    def __init__(self, name: str, *, host: str, port: int = 25, sender: str,
                 recipients: list[str], username: str | None = None,
                 password_env: str | None = None, security: Literal["none", "starttls", "ssl"]
                 = "none", timeout_s: float = 10.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.username = username
        self.password_env = password_env
        self.security = security
        self.timeout_s = timeout_s

    def build(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = alert.title
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(alert.message())
        return msg

    def send(self, alert: Alert) -> None:
        password = _secret(None, self.password_env, f"email {self.name}") \
            if self.password_env else None
        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port,
                                                      timeout=self.timeout_s,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and password:
                    smtp.login(self.username, password)
                smtp.send_message(self.build(alert))
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"email {self.name}: delivery to {self.host}:{self.port} failed "
                               f"({type(exc).__name__})") from None


def build_channels(configs: list[Any]) -> list[WebhookChannel | EmailChannel]:
    """Channels from :class:`signal_export.monitoring.config` channel models."""
    out: list[WebhookChannel | EmailChannel] = []
    for c in configs:
        if c.kind == "webhook":
            out.append(WebhookChannel(c.name, url=c.url, url_env=c.url_env, style=c.style,
                                      chat_id=c.chat_id, timeout_s=c.timeout_s))
        else:
            out.append(EmailChannel(c.name, host=c.host, port=c.port, sender=c.sender,
                                    recipients=c.recipients, username=c.username,
                                    password_env=c.password_env, security=c.security,
                                    timeout_s=c.timeout_s))
    return out
