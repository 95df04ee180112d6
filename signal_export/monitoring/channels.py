"""Alert delivery: a JSON webhook (Slack/Discord/Telegram/generic payload shapes) and SMTP email.

Each channel receives one :class:`~.alerts.Notification` per monitor cycle
(every alert that fired or resolved in it) and sends it as one message.
:func:`check_channels` resolves what every channel needs before the monitor
starts (the webhook URL's environment variable, the SMTP password, a CA
file), so a missing secret is a start-up error, not a failure at the first
alert. Secrets (webhook URLs with tokens, SMTP passwords) are read from
environment variables named in the config (or their ``_FILE`` form, a
mounted secret file), registered with the log redaction, and never put into
a log line or an exception message. SMTP is encrypted by default: STARTTLS,
or implicit TLS on port 465; plain text only with ``security: none``. Not the
decision what to send (:mod:`.manager`).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from signal_export.errors import BridgeError
from signal_export.logs import register_secret
from signal_export.monitoring.alerts import Notification
from signal_export.security.secrets import SecretError, env_value

WebhookStyle = Literal["generic", "slack", "discord", "telegram"]
SmtpSecurity = Literal["starttls", "ssl", "none"]
#: Message size limits of the chat services (characters).
TEXT_LIMITS = {"discord": 2000, "telegram": 4096, "slack": 40_000}


class ChannelError(BridgeError, RuntimeError):
    """A channel cannot deliver; the message never contains the secret URL or password."""


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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 2] + " …"


def webhook_payload(notification: Notification, style: WebhookStyle,
                    chat_id: str | None = None) -> dict[str, Any]:
    """The JSON body for ``style``: Slack ``text``, Discord ``content``, Telegram
    ``chat_id``+``text``; ``generic`` carries the text and every alert's fields."""
    text = notification.message()
    if style == "slack":
        return {"text": _clip(text, TEXT_LIMITS["slack"])}
    if style == "discord":
        return {"content": _clip(text, TEXT_LIMITS["discord"])}
    if style == "telegram":
        if not chat_id:
            raise ChannelError("telegram webhook needs chat_id")
        return {"chat_id": chat_id, "text": _clip(text, TEXT_LIMITS["telegram"])}
    return {"text": text, **notification.as_dict()}


class WebhookChannel:
    """POST each notification as JSON to a URL (from ``url`` or the env variable ``url_env``)."""

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

    def _resolve_url(self) -> str:
        url = _secret(self._url, self._url_env, f"webhook {self.name}")
        if not url:
            raise ChannelError(f"webhook {self.name}: no url or url_env configured")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            where = f"${self._url_env}" if self._url_env else "url"
            raise ChannelError(f"webhook {self.name}: {where} is not an http(s) URL")
        return url

    def check(self) -> None:
        """Raise :class:`ChannelError` if a send could not even start (URL missing or bad)."""
        self._resolve_url()
        if self.style == "telegram" and not self.chat_id:
            raise ChannelError(f"webhook {self.name}: style telegram needs chat_id")

    def send(self, notification: Notification) -> None:
        url = self._resolve_url()
        body = webhook_payload(notification, self.style, self.chat_id)
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


def default_security(port: int) -> SmtpSecurity:
    """Implicit TLS on 465 (SMTPS), STARTTLS anywhere else."""
    return "ssl" if port == 465 else "starttls"


class EmailChannel:
    """Send each notification as one plain-text email through SMTP.

    ``security``: ``starttls`` (upgrade before anything else is said; refused if the
    server does not offer it), ``ssl`` (implicit TLS) or ``none`` (clear text, only
    when configured so); default :func:`default_security` of the port. Server
    certificates are verified against the system CAs, or ``ca_file``.
    """

    def __init__(self, name: str, *, host: str, port: int = 587, sender: str,
                 recipients: list[str], username: str | None = None,
                 password_env: str | None = None, security: SmtpSecurity | None = None,
                 ca_file: str | None = None, timeout_s: float = 10.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.username = username
        self.password_env = password_env
        self.security: SmtpSecurity = security or default_security(port)
        self.ca_file = ca_file
        self.timeout_s = timeout_s

    def _password(self) -> str | None:
        return _secret(None, self.password_env, f"email {self.name}") \
            if self.password_env else None

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def check(self) -> None:
        if not self.host:
            raise ChannelError(f"email {self.name}: no SMTP host configured")
        if bool(self.username) != bool(self.password_env):
            raise ChannelError(f"email {self.name}: username and password_env go together")
        self._password()
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ChannelError(f"email {self.name}: ca_file {self.ca_file} does not exist")

    def build(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = notification.title
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(notification.message())
        return msg

    def send(self, notification: Notification) -> None:
        password = self._password()
        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port,
                                                      timeout=self.timeout_s,
                                                      context=self._tls())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self._tls())  # SMTPNotSupportedError if not offered
                if self.username and password:
                    smtp.login(self.username, password)
                smtp.send_message(self.build(notification))
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"email {self.name}: delivery to {self.host}:{self.port} "
                               f"({self.security}) failed ({type(exc).__name__})") from None


def build_channels(configs: Sequence[Any]) -> list[WebhookChannel | EmailChannel]:
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
                                    ca_file=c.ca_file, timeout_s=c.timeout_s))
    return out


def check_channels(channels: Sequence[Any]) -> list[str]:
    """One line per channel that could not deliver (missing secret, bad URL, ...); [] if all
    can. Channels without a ``check`` (test doubles) are taken as ready."""
    problems = []
    for channel in channels:
        check = getattr(channel, "check", None)
        if check is None:
            continue
        try:
            check()
        except ChannelError as exc:
            problems.append(str(exc))
    return problems
