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

The file is read with loaders that refuse a repeated key (a second ``producers:``
appended to the file would otherwise silently drop every producer of the first) and
edited only through :func:`add_producer_to_file` (``signal-ingest new-token`` /
``add-producer``): load, check, add, write a temporary file, ``os.replace`` it; the
result is checked to load before it replaces the old file, so the file is never
half-written or invalid. A new file is created ``0600``; an existing file keeps its
permission bits (less any group/other write bit): ``docker/make_secrets.py`` makes it
``0644`` on purpose, so that the container user can read it.

Not for: HTTP handling (see :mod:`signal_export.ingest.app`) or rate limiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from signal_export.contract import STRATEGY_ID_RE
from signal_export.errors import ConfigError
from signal_export.ingest.strict import load_yaml, loads_json

HASH_SCHEME = "sha256"
# \A...\Z and fullmatch: ``$`` would accept a trailing newline (a name stored as ``source``).
_HASH_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}\Z")


class TokenConfigError(ConfigError):
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


def _read_token_data(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenConfigError(f"token file {path}: {exc.strerror or exc}") from None
    try:
        return loads_json(text) if path.suffix == ".json" else load_yaml(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise TokenConfigError(f"token file {path}: not valid {path.suffix[1:] or 'YAML'}: "
                               f"{exc}") from None


def load_token_file(path: str | Path) -> TokenRegistry:
    """Read a ``.yaml``/``.yml`` or ``.json`` token file (a repeated key is an error)."""
    path = Path(path)
    data = _read_token_data(path)
    try:
        return registry_from_mapping(data)
    except TokenConfigError as exc:
        raise TokenConfigError(f"token file {path}: {exc}") from None


def producer_entry(name: str, token_hash: str, strategy_ids: Iterable[str],
                   rate_limit: RateLimit | None = None) -> dict[str, Any]:
    """One ``producers`` entry as written to the token file (checked like a loaded one)."""
    entry: dict[str, Any] = {"name": name, "token_hash": token_hash,
                             "strategy_ids": list(dict.fromkeys(strategy_ids))}
    if rate_limit is not None:
        entry["rate_limit"] = {"per_second": rate_limit.per_second, "burst": rate_limit.burst}
    producer_from_mapping(entry)
    return entry


def _leading_comments(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def add_producer_to_file(path: str | Path, entry: Mapping[str, Any], *,
                         replace: bool = False) -> tuple[Path, bool]:
    """Add ``entry`` (see :func:`producer_entry`) to the token file at ``path``, atomically.

    A missing file is created (mode ``0600``). The file must load as it is (a repeated key
    or a bad entry is reported, not "repaired"); a producer of the same name is an error
    unless ``replace`` (a new token for it). YAML comments other than the file's leading
    comment block are not kept. Returns the path written (symlinks resolved) and whether
    an entry was replaced.
    """
    path = Path(path).resolve()
    is_json = path.suffix == ".json"
    header = ""
    if path.exists():
        data = _read_token_data(path)
        if data is None:
            data = {"producers": []}
        try:
            registry_from_mapping(data)
        except TokenConfigError as exc:
            raise TokenConfigError(f"token file {path}: {exc}; fix it before adding to "
                                   "it") from None
        if not is_json:
            header = _leading_comments(path.read_text(encoding="utf-8"))
        mode = stat.S_IMODE(path.stat().st_mode) & ~0o022
    else:
        data, mode = {"producers": []}, 0o600
    producers = [dict(p) for p in data["producers"]]
    names = [p.get("name") for p in producers]
    replaced = entry["name"] in names
    if replaced:
        if not replace:
            raise TokenConfigError(f"token file {path}: producer {entry['name']!r} is already "
                                   "in it (use --replace to give it a new token)")
        producers[names.index(entry["name"])] = dict(entry)
    else:
        producers.append(dict(entry))
    new_data = {**data, "producers": producers}
    text = (json.dumps(new_data, indent=2) + "\n" if is_json else
            header + yaml.safe_dump(new_data, sort_keys=False, default_flow_style=None,
                                    allow_unicode=True))
    try:  # what is about to be written loads, with every producer in it
        registry_from_mapping(loads_json(text) if is_json else load_yaml(text))
    except (TokenConfigError, ValueError, yaml.YAMLError) as exc:
        raise TokenConfigError(f"token file {path}: not changed: {exc}") from None
    _write_atomically(path, text, mode)
    return path, replaced


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to a temporary file next to ``path`` (``mode`` from the start, so the
    content is never readable by others), fsync it and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (not on every filesystem)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
