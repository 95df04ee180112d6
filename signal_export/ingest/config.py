"""Settings of the ingest API: limits, grace window, where tokens live, where it listens.

Read like :func:`signal_export.settings.load_settings` (keyword overrides >
environment > ``.env`` > defaults); the MongoDB side (URI, database,
collections, exchange, quotes) comes from :mod:`signal_export.settings` itself.

=================================  ==========================  =========
variable                           meaning                     default
=================================  ==========================  =========
``EXT_SIG_INGEST_TOKENS_FILE``     producer token file         required
``EXT_SIG_INGEST_HOST``            listen address              127.0.0.1
``EXT_SIG_INGEST_PORT``            listen port                 8090
``EXT_SIG_INGEST_GRACE_SECONDS``   TradingView grace window    5
``EXT_SIG_INGEST_MAX_BODY_BYTES``  request size limit (413)    1048576
``EXT_SIG_INGEST_MAX_ITEMS``       signals per request         5000
``EXT_SIG_INGEST_RATE_PER_SECOND`` default per-token refill    10
``EXT_SIG_INGEST_RATE_BURST``      default per-token burst     50
``EXT_SIG_INGEST_BODY_TOKEN_MAX_BYTES``  body read without a bearer header (401 beyond)  8192
``EXT_SIG_INGEST_HEADER_TIMEOUT_SECONDS``  request head must arrive within  10
``EXT_SIG_INGEST_BODY_TIMEOUT_SECONDS``    request body must arrive within (408)  30
``EXT_SIG_INGEST_KEEP_ALIVE_SECONDS``      idle keep-alive connection closed after  5
``EXT_SIG_INGEST_MAX_CONNECTIONS``         connections/requests at once (503 beyond)  100
``EXT_SIG_INGEST_FORWARDED_ALLOW_IPS``     proxies trusted for X-Forwarded-For  none
=================================  ==========================  =========

Not for: the token file format (:mod:`signal_export.ingest.tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from signal_export.errors import ConfigError
from signal_export.ingest.tokens import RateLimit
from signal_export.settings import read_env

ENV_VARS: dict[str, str] = {
    "tokens_file": "EXT_SIG_INGEST_TOKENS_FILE",
    "host": "EXT_SIG_INGEST_HOST",
    "port": "EXT_SIG_INGEST_PORT",
    "grace_seconds": "EXT_SIG_INGEST_GRACE_SECONDS",
    "max_body_bytes": "EXT_SIG_INGEST_MAX_BODY_BYTES",
    "max_items": "EXT_SIG_INGEST_MAX_ITEMS",
    "rate_per_second": "EXT_SIG_INGEST_RATE_PER_SECOND",
    "rate_burst": "EXT_SIG_INGEST_RATE_BURST",
    "body_token_max_bytes": "EXT_SIG_INGEST_BODY_TOKEN_MAX_BYTES",
    "header_timeout_seconds": "EXT_SIG_INGEST_HEADER_TIMEOUT_SECONDS",
    "body_timeout_seconds": "EXT_SIG_INGEST_BODY_TIMEOUT_SECONDS",
    "keep_alive_seconds": "EXT_SIG_INGEST_KEEP_ALIVE_SECONDS",
    "max_connections": "EXT_SIG_INGEST_MAX_CONNECTIONS",
    "forwarded_allow_ips": "EXT_SIG_INGEST_FORWARDED_ALLOW_IPS",
}
_TYPES: dict[str, type] = {"tokens_file": str, "host": str, "port": int, "grace_seconds": float,
                           "max_body_bytes": int, "max_items": int, "rate_per_second": float,
                           "rate_burst": int, "body_token_max_bytes": int,
                           "header_timeout_seconds": float, "body_timeout_seconds": float,
                           "keep_alive_seconds": float, "max_connections": int,
                           "forwarded_allow_ips": str}


class IngestConfigError(ConfigError):
    """A setting has a bad value; the message names the variable."""


@dataclass(frozen=True)
class IngestConfig:
    """Limits and listen address of the ingest API."""

    tokens_file: str | None = None
    host: str = "127.0.0.1"
    port: int = 8090
    grace_seconds: float = 5.0
    max_body_bytes: int = 1_048_576
    max_items: int = 5000
    rate_per_second: float = 10.0
    rate_burst: int = 50
    body_token_max_bytes: int = 8192
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 100
    forwarded_allow_ips: str | None = None  # comma-separated; unset: proxy headers ignored

    @property
    def default_rate_limit(self) -> RateLimit:
        return RateLimit(self.rate_per_second, self.rate_burst)

    def check(self) -> IngestConfig:
        """Raise :class:`IngestConfigError` naming the first bad value."""
        rules = {
            "grace_seconds": self.grace_seconds >= 0,
            "max_body_bytes": self.max_body_bytes > 0,
            "max_items": self.max_items > 0,
            "rate_per_second": self.rate_per_second > 0,
            "rate_burst": self.rate_burst >= 1,
            "body_token_max_bytes": self.body_token_max_bytes > 0,
            "header_timeout_seconds": self.header_timeout_seconds > 0,
            "body_timeout_seconds": self.body_timeout_seconds > 0,
            "keep_alive_seconds": self.keep_alive_seconds > 0,
            "max_connections": self.max_connections >= 1,
            "port": 0 <= self.port <= 65535,
        }
        for name, ok in rules.items():
            if not ok:
                raise IngestConfigError(f"{ENV_VARS[name]}: bad value {getattr(self, name)!r}")
        return self


def _convert(name: str, text: str) -> Any:
    try:
        return _TYPES[name](text.strip())
    except ValueError:
        raise IngestConfigError(f"{ENV_VARS[name]}: {text!r} is not a valid "
                                f"{_TYPES[name].__name__}") from None


def load_ingest_config(env_file: str | Path | None = ".env", **overrides: Any) -> IngestConfig:
    """``overrides`` > ``os.environ`` > ``env_file`` > defaults; ``None`` overrides are ignored."""
    values: dict[str, Any] = {
        name: _convert(name, text) for name, text in read_env(ENV_VARS, env_file).items()}
    for name, value in overrides.items():
        if name not in ENV_VARS:
            raise TypeError(f"unknown ingest setting {name!r}")
        if value is not None:
            values[name] = value
    return replace(IngestConfig(), **values).check()
