"""Settings of the export side, from the environment and an optional ``.env`` file.

Precedence: explicit keyword arguments > process environment > ``.env`` file >
defaults. The ``.env`` file is read with python-dotenv without changing
``os.environ``. Any variable ``NAME`` may instead be given as ``NAME_FILE``,
the path of a file holding the value (Docker secrets:
``EXT_SIG_MONGO_URI_FILE=/run/secrets/...``), see
:func:`signal_export.security.secrets.env_value`. Every variable is documented
in ``configs/.env.example``.
URI passwords are masked by :func:`signal_export.logs.redact_uri`, so that a Mongo
password never reaches a log line.

Not for: Freqtrade strategy options (tolerance, thresholds), which live with the strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from signal_export.contract import (
    DEFAULT_EXCHANGE,
    EXPORT_RUNS_COLLECTION,
    MARKET_1D_COLLECTION,
    MARKET_1M_COLLECTION,
    SIGNALS_COLLECTION,
    ContractError,
    parse_quotes,
)
from signal_export.logs import redact_uri
from signal_export.point_in_time import history_collection_name
from signal_export.security.secrets import env_value

DEFAULT_MONGO_URI = "mongodb://127.0.0.1:27017"

#: Settings field -> environment variable.
ENV_VARS: dict[str, str] = {
    "mongo_uri": "EXT_SIG_MONGO_URI",
    "db": "EXT_SIG_DB",
    "collection": "EXT_SIG_COLLECTION",
    "strategy_ids": "EXT_SIG_STRATEGY_ID",
    "export_runs_collection": "EXT_SIG_EXPORT_RUNS_COLLECTION",
    "exchange": "EXT_SIG_EXCHANGE",
    "quotes": "EXT_SIG_QUOTES",
    "signals_ttl_seconds": "EXT_SIG_TTL_SECONDS",
    "history_collection": "EXT_SIG_HISTORY_COLLECTION",
    "history_ttl_seconds": "EXT_SIG_HISTORY_TTL_SECONDS",
    "batch_size": "EXT_SIG_BATCH_SIZE",
    "market_mongo_uri": "MARKET_MONGO_URI",
    "market_db": "MARKET_DB",
    "market_1d_collection": "MARKET_1D_COLLECTION",
    "market_1m_collection": "MARKET_1M_COLLECTION",
}


@dataclass(frozen=True)
class Settings:
    """Where signals and market data live and how the exporter writes them."""

    mongo_uri: str = DEFAULT_MONGO_URI
    db: str = "signals"
    collection: str = SIGNALS_COLLECTION
    strategy_ids: tuple[str, ...] = ()
    export_runs_collection: str = EXPORT_RUNS_COLLECTION
    exchange: str = DEFAULT_EXCHANGE
    quotes: tuple[str, ...] = field(default_factory=lambda: parse_quotes(None))
    signals_ttl_seconds: int | None = None
    #: Replaced signal versions (point-in-time backtests); unset: ``<collection>_history``.
    history_collection: str | None = None
    #: Keep history entries this long after they were superseded; unset: forever.
    history_ttl_seconds: int | None = None
    batch_size: int = 5_000
    market_mongo_uri: str | None = None
    market_db: str = "market"
    market_1d_collection: str = MARKET_1D_COLLECTION
    market_1m_collection: str = MARKET_1M_COLLECTION

    @property
    def market_uri(self) -> str:
        """The market-data URI; defaults to the signals URI."""
        return self.market_mongo_uri or self.mongo_uri

    @property
    def history_collection_name(self) -> str:
        """The history collection: ``EXT_SIG_HISTORY_COLLECTION``, else ``<collection>_history``
        (``crypto_signals_history``)."""
        return self.history_collection or history_collection_name(self.collection)

    def redacted(self) -> dict[str, Any]:
        """A dict safe to log or print (URI passwords masked)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("mongo_uri", "market_mongo_uri"):
            if out[name]:
                out[name] = redact_uri(out[name])
        return out


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ContractError(f"{name}: {text!r} is not an integer", name) from None
    if value <= 0:
        raise ContractError(f"{name}: must be > 0, got {value}", name)
    return value


def _convert(name: str, text: str) -> Any:
    env = ENV_VARS[name]
    if name in ("strategy_ids",):
        return _split_list(text)
    if name == "quotes":
        return parse_quotes(text)
    if name in ("signals_ttl_seconds", "history_ttl_seconds", "batch_size"):
        return _positive_int(env, text)
    if name == "exchange":
        return text.strip().upper()
    return text.strip()


def read_env(env_vars: Mapping[str, str], env_file: str | Path | None = ".env") -> dict[str, str]:
    """``{setting: raw text}`` for the variables set in ``os.environ`` (first) or ``env_file``.

    Each variable ``NAME`` may be given as ``NAME_FILE`` (path of a file holding the value;
    both set is a :class:`~signal_export.security.secrets.SecretError`). Empty values
    count as unset; a missing ``env_file`` is fine; ``os.environ`` is not changed.
    """
    file_values: Mapping[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        file_values = dotenv_values(env_file)
    found = {}
    for name, env in env_vars.items():
        text = env_value(env, env_file_values=file_values)
        if text is not None:
            found[name] = str(text)
    return found


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``overrides`` > ``os.environ`` > ``env_file`` > defaults.

    ``env_file=None`` skips the file; a missing file is fine (defaults apply).
    Empty values count as unset. Overrides that are ``None`` are ignored.
    """
    values: dict[str, Any] = {
        name: _convert(name, text) for name, text in read_env(ENV_VARS, env_file).items()}
    for name, value in overrides.items():
        if name not in ENV_VARS:
            raise TypeError(f"unknown setting {name!r}")
        if value is None:
            continue
        if isinstance(value, str) and name in ("strategy_ids", "quotes", "signals_ttl_seconds",
                                                "history_ttl_seconds", "batch_size", "exchange"):
            value = _convert(name, value)
        elif name in ("strategy_ids", "quotes"):
            value = tuple(value)
        values[name] = value
    return replace(Settings(), **values)
