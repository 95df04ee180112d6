"""Producer bearer tokens: stored hashed, bound to the strategy_ids each producer may write.

A token file (YAML or JSON) lists producers; each has a ``name`` (recorded as the
signals' ``source``), ``token_hash`` (``"sha256:<64 hex>"`` of the token; the
token itself is never stored or logged), ``strategy_ids`` it may write and read,
and optionally its own ``rate_limit`` (``per_second``, ``burst``)::

    producers:
      - name: tradingview-desk
        token_hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        strategy_ids: [tv_trend_1h]
        rate_limit: {per_second: 2, burst: 10}

Tokens are random (``new_token()``: 256 bits), so one SHA-256 is enough (a slow
password hash protects guessable secrets, which these are not). Lookup hashes the
presented token and compares it with *every* stored hash with
:func:`hmac.compare_digest`, so the time taken tells nothing about which hash
matched or how much of it.

Not for: HTTP handling (see :mod:`signal_export.ingest.app`) or rate limiting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signal_export.contract import STRATEGY_ID_RE

HASH_SCHEME = "sha256"
# \A...\Z and fullmatch: ``$`` would accept a trailing newline (a name stored as ``source``).
_HASH_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\Z")


class TokenConfigError(ValueError):
    """The token file is unreadable or breaks a rule; the message names the producer and field."""


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: float
    burst: int


@dataclass(frozen=True)
class Producer:
    """One producer: who it is, the hash of its token and what it may write."""

    name: str
    token_hash: str
    strategy_ids: frozenset[str]
    rate_limit: RateLimit | None = None

    def may_write(self, strategy_id: Any) -> bool:
        return isinstance(strategy_id, str) and strategy_id in self.strategy_ids


def hash_token(token: str) -> str:
    """``"sha256:<hex>"`` of a token: the form stored in the token file."""
    return f"{HASH_SCHEME}:{hashlib.sha256(token.encode('utf-8')).hexdigest()}"


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class TokenRegistry:
    """Finds the producer of a presented token in constant time per stored hash."""

    def __init__(self, producers: Iterable[Producer]) -> None:
        self.producers: tuple[Producer, ...] = tuple(producers)
        names = [p.name for p in self.producers]
        dup_names = sorted({n for n in names if names.count(n) > 1})
        if dup_names:
            raise TokenConfigError(f"producer name(s) {dup_names} appear more than once")
        hashes = [p.token_hash for p in self.producers]
        if len(set(hashes)) != len(hashes):
            raise TokenConfigError("two producers share one token hash: give each its own token")

    def authenticate(self, token: str | None) -> Producer | None:
        """The producer whose token this is, or ``None`` (absent or unknown token)."""
        if not token:
            return None
        presented = hash_token(token).encode("ascii")
        found: Producer | None = None
        for producer in self.producers:  # no early exit: same work whichever matches
            if hmac.compare_digest(presented, producer.token_hash.encode("ascii")):
                found = producer
        return found

    def __len__(self) -> int:
        return len(self.producers)


def _rate_limit(raw: Any, where: str) -> RateLimit | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise TokenConfigError(f"{where}.rate_limit: expected a mapping with per_second, burst")
    try:
        per_second = float(raw["per_second"])
        burst = int(raw.get("burst", max(1, round(per_second))))
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenConfigError(f"{where}.rate_limit: needs per_second (number) and burst "
                               f"(integer): {exc}") from None
    if per_second <= 0 or burst < 1:
        raise TokenConfigError(f"{where}.rate_limit: per_second must be > 0 and burst >= 1")
    return RateLimit(per_second, burst)


def producer_from_mapping(raw: Any, index: int = 0) -> Producer:
    """One producer entry of the token file, checked field by field."""
    where = f"producers[{index}]"
    if not isinstance(raw, Mapping):
        raise TokenConfigError(f"{where}: expected a mapping")
    unknown = set(raw) - {"name", "token_hash", "strategy_ids", "rate_limit"}
    if unknown:
        raise TokenConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise TokenConfigError(f"{where}.name: {name!r} must be 1-64 chars of "
                               "[A-Za-z0-9_.:@-], starting alphanumeric")
    where = f"producer {name!r}"
    token_hash = raw.get("token_hash")
    if not isinstance(token_hash, str) or not _HASH_RE.fullmatch(token_hash):
        raise TokenConfigError(f"{where}.token_hash: expected 'sha256:<64 lowercase hex>' "
                               "(run `signal-ingest hash-token`); plain tokens are not accepted")
    ids = raw.get("strategy_ids")
    if not isinstance(ids, list) or not ids:
        raise TokenConfigError(f"{where}.strategy_ids: expected a non-empty list")
    for sid in ids:
        if not isinstance(sid, str) or not STRATEGY_ID_RE.fullmatch(sid):
            raise TokenConfigError(f"{where}.strategy_ids: {sid!r} is not a valid strategy_id")
    return Producer(name, token_hash, frozenset(ids), _rate_limit(raw.get("rate_limit"), where))


def registry_from_mapping(data: Any) -> TokenRegistry:
    """``{"producers": [...]}`` -> registry."""
    if not isinstance(data, Mapping) or not isinstance(data.get("producers"), list):
        raise TokenConfigError("token file: expected a mapping with a 'producers' list")
    return TokenRegistry(producer_from_mapping(raw, i) for i, raw in enumerate(data["producers"]))


def load_token_file(path: str | Path) -> TokenRegistry:
    """Read a ``.yaml``/``.yml`` or ``.json`` token file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenConfigError(f"token file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise TokenConfigError(f"token file {path}: not valid {path.suffix[1:] or 'YAML'}: "
                               f"{exc}") from None
    try:
        return registry_from_mapping(data)
    except TokenConfigError as exc:
        raise TokenConfigError(f"token file {path}: {exc}") from None
