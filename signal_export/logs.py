"""The one logging setup of every entry point, with secret redaction.

:func:`configure_logging` gives exporter, scheduler, monitor, ingest API and
research CLI the same root handler (plain text or JSON lines) and installs
:class:`SecretRedactingFilter` on the root handlers, so records of every
library that propagates to root (pymongo, ccxt, freqtrade, apscheduler, ...)
are masked: the message and its arguments, exception tracebacks, stack info
and ``extra`` fields. Inside Freqtrade, whose own ``setup_logging`` owns the
handlers, the strategy module calls :func:`install_redaction_filter` instead.

What is masked: passwords in URIs (MongoDB, SMTP, any ``scheme://user:pw@``),
``key=value``/``"key": "value"`` pairs whose key names a secret (password,
secret, api key, token, jwt_secret_key, ...), ``Bearer``/``Basic``
credentials, JWTs, PEM private keys, Slack/Discord webhook and Telegram bot
tokens, and every literal value registered with :func:`register_secret`
(secrets loaded through :mod:`signal_export.security.secrets`, Freqtrade
config secrets, secret-named environment variables).

Not for: deciding where secrets come from (``signal_export.security.secrets``)
or the levels of individual libraries.
"""

from __future__ import annotations

import json as _json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

MASK = "***"
#: Literal secrets shorter than this are not registered (they would mask ordinary words).
MIN_SECRET_LENGTH = 6

#: The last word of a secret's name (``MONGO_EXPORTER_PASSWORD``, ``api_key``, ``X-MBX-APIKEY``).
_SECRET_WORD = (r"(?:password|passwd|secret|secret[_-]?key|token|ws[_-]?token|api[_-]?key"
                r"|apikey|access[_-]?key|private[_-]?key|auth[_-]?key|credentials?|signature"
                r"|webhook[_-]?url)")
#: A name is secret when its last word (after ``_``, ``.`` or ``-``) is one of those; ``pwd``
#: only after a separator (``DB_PWD``), so the shell's ``PWD``/``OLDPWD`` (the working
#: directory) are not masked. Explicit words, not substrings.
_SECRET_NAME = rf"(?:(?:[a-z0-9_.-]*[_.-])?{_SECRET_WORD}|[a-z0-9_.-]*[_.-]pwd)"
#: Names of attributes/keys/env variables whose value is a secret as a whole.
SECRET_NAME_RE = re.compile(rf"^{_SECRET_NAME}$", re.IGNORECASE)

_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    # PEM private keys (whole block)
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                re.DOTALL), f"-----PRIVATE KEY {MASK}-----"),
    # Slack incoming webhooks: https://hooks.slack.com/services/T../B../secret
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/-]+"), rf"\1{MASK}"),
    # Discord webhooks: https://discord.com/api/webhooks/<id>/<token>
    (re.compile(r"(discord(?:app)?\.com/api/webhooks/\d+/)[\w-]+"), rf"\1{MASK}"),
    # Telegram bot API URLs and bare bot tokens: bot123456:ABC-def...
    (re.compile(r"(api\.telegram\.org/(?:file/)?bot)[^/\s]+"), rf"\1{MASK}"),
    (re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"), MASK),
    # Authorization headers and bearer tokens anywhere
    (re.compile(r"(\bAuthorization[\"']?\s*[:=]\s*[\"']?(?:(?:Bearer|Basic|Token|Digest)\s+)?)"
                r"[^\s\"',;]+", re.IGNORECASE), rf"\1{MASK}"),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), rf"\1 {MASK}"),
    # JSON Web Tokens
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # URIs whose user part holds an unencoded "@" (smtp://me@example.org:pw@host)
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s]*?:)[^@/\s]+(?=@)", re.IGNORECASE), rf"\1{MASK}"),
    # key=value, key: value, "key": "value with spaces", X-MBX-APIKEY: value
    (re.compile(rf"(?P<head>[\"']?\b{_SECRET_NAME}[\"']?\s*(?:=|:)\s*)"
                r"(?:(?P<q>[\"'])[^\"'\n]*(?P=q)|[^\"'\s,;&}\]\)]+)", re.IGNORECASE),
     lambda m: f"{m['head']}{m['q'] or ''}{MASK}{m['q'] or ''}"),
]

_known_lock = threading.Lock()
_known_secrets: set[str] = set()
_known_re: re.Pattern[str] | None = None

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def register_secret(value: str | None) -> None:
    """Mask this literal value wherever it appears in a log record from now on."""
    global _known_re
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _known_lock:
        if value in _known_secrets:
            return
        _known_secrets.add(value)
        ordered = sorted(_known_secrets, key=len, reverse=True)
        _known_re = re.compile("|".join(re.escape(s) for s in ordered))


def register_env_secrets(environ: Mapping[str, str] | None = None) -> int:
    """Register values of secret-named environment variables (``*_PASSWORD``, ``*_TOKEN``...).

    URIs in the environment register their password part. Returns how many
    values were registered.
    """
    environ = os.environ if environ is None else environ
    count = 0
    for name, value in environ.items():
        if not value:
            continue
        if SECRET_NAME_RE.match(name) or name.endswith(("_SECRET", "_KEY")):
            register_secret(value)
            count += 1
        for match in re.finditer(r"://[^:/@\s]*:([^@\s]+)@", value):
            register_secret(match.group(1))
            count += 1
    return count


_FREQTRADE_SECRET_PATHS: tuple[tuple[str, ...], ...] = (
    ("exchange", "key"), ("exchange", "secret"), ("exchange", "password"), ("exchange", "uid"),
    ("exchange", "walletAddress"), ("exchange", "privateKey"),
    ("api_server", "password"), ("api_server", "jwt_secret_key"), ("api_server", "ws_token"),
    ("telegram", "token"), ("telegram", "chat_id"), ("discord", "webhook_url"),
    ("webhook", "url"), ("ext_signals", "mongo_uri"),
)


def register_config_secrets(config: Mapping[str, Any] | None) -> None:
    """Register the secrets of a Freqtrade config (exchange key/secret, API server, Telegram...)."""
    if not config:
        return
    for path in _FREQTRADE_SECRET_PATHS:
        node: Any = config
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, list):
            for item in node:
                register_secret(item if isinstance(item, str) else None)
        elif path[-1] == "mongo_uri" and isinstance(node, str):
            for match in re.finditer(r"://[^:/@\s]*:([^@\s]+)@", node):
                register_secret(match.group(1))
        else:
            register_secret(node if isinstance(node, str) else str(node) if node else None)


#: The password runs to the last ``@`` before the host: an unescaped ``@`` in it stays masked.
_URI_PASSWORD_RE = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^\s/]*)(?=@)",
                              re.IGNORECASE)
_QUERY_SECRET_RE = re.compile(
    r"(?P<head>[?&](?:password|authMechanismProperties|tlsCertificateKeyFilePassword)=)[^&\s]*",
    re.IGNORECASE,
)


def redact_uri(text: str) -> str:
    """``mongodb://user:secret@host`` -> ``mongodb://user:***@host`` (anywhere in ``text``)."""
    if not isinstance(text, str):
        return text
    text = _URI_PASSWORD_RE.sub(lambda m: f"{m['head']}***", text)
    return _QUERY_SECRET_RE.sub(lambda m: f"{m['head']}***", text)


def redact_text(text: str) -> str:
    """``text`` with every known secret shape and registered secret value masked."""
    if not isinstance(text, str) or not text:
        return text
    known = _known_re
    if known is not None:
        text = known.sub(MASK, text)
    text = redact_uri(text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Redact strings inside ``value`` (dicts, lists, tuples); secret-named keys masked whole."""
    if _depth > 6:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and SECRET_NAME_RE.match(k) and v
                    else redact_value(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return type(value)(redact_value(v, _depth + 1) for v in value)
    if isinstance(value, int | float | bool | datetime) or value is None:
        return value
    # other objects: their text form could carry a secret (e.g. an exception, a settings object)
    text = str(value)
    redacted = redact_text(text)
    return redacted if redacted != text else value


class SecretRedactingFilter(logging.Filter):
    """Masks secrets in a record's message, args, traceback, stack info and ``extra`` fields.

    Attach it to *handlers*: a handler filter sees every record that reaches
    the handler, including records of third-party loggers propagated to root.
    The record is changed in place, so later handlers see the masked version.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: mask the template and the args
            record.msg = redact_text(str(record.msg))
            record.args = redact_value(record.args) if record.args else record.args
        else:
            record.msg = redact_text(message)
            record.args = None
        if record.exc_info:
            record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info))
                                          .rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for name, value in list(vars(record).items()):
            if name in _STANDARD_ATTRS or name.startswith("_"):
                continue
            if SECRET_NAME_RE.match(name) and value:
                setattr(record, name, MASK)
            else:
                setattr(record, name, redact_value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return _json.dumps(out, default=str, ensure_ascii=False)


_FILTER = SecretRedactingFilter()
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _all_handlers() -> Iterable[logging.Handler]:
    yield from logging.getLogger().handlers
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield from logger.handlers


def install_redaction_filter(config: Mapping[str, Any] | None = None) -> SecretRedactingFilter:
    """Put the redaction filter on every existing handler (root first); idempotent.

    Call it after someone else configured logging (Freqtrade's
    ``setup_logging`` runs before the strategy is loaded): from the strategy
    module and again from the strategy's ``__init__`` with its config, so the
    exchange key/secret and API-server passwords of that config are masked too.
    """
    register_env_secrets()
    register_config_secrets(config)
    shared = _FILTER
    for handler in _all_handlers():
        if not any(isinstance(f, SecretRedactingFilter) for f in handler.filters):
            handler.addFilter(shared)
    return shared


def configure_logging(level: str | int | None = None, json: bool | None = None,
                      stream: TextIO | None = None) -> logging.Handler:
    """Replace the root handlers by one stream handler (text or JSON) with redaction.

    Every entry point calls this once at start (its ``--log-level`` flag wins).
    ``None`` means: ``LOG_LEVEL`` (default INFO) and ``LOG_JSON`` (1/true/yes)
    from the environment, which is how containers switch to JSON lines.
    Secret-named environment variables are registered as literal secrets.
    Returns the handler.
    """
    if level is None:
        level = os.environ.get("LOG_LEVEL") or "INFO"
    if json is None:
        json = os.environ.get("LOG_JSON", "").strip().lower() in ("1", "true", "yes", "on")
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"log level: unknown level {level!r} (use DEBUG, INFO, WARNING, "
                             "ERROR)")
        level = resolved
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    install_redaction_filter()
    return handler
