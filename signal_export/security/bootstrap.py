"""Least-privilege MongoDB users and databases for the bridge, created idempotently.

One plan, :func:`plan_user_roles`, says which service may do what:

========== ============================================== ==========================
user       roles                                          why
========== ============================================== ==========================
exporter   readWrite on signals DB, readWrite on market DB research imports market
                                                          data and exports signals
strategy   read on signals DB (+ custom write-back role   Freqtrade must never write
           on the write-back collections, if enabled)     a signal
monitor    read on signals DB and market DB               reports, never writes
ingest     readWrite on signals DB                        HTTP producers' signals
========== ============================================== ==========================

:func:`bootstrap` applies it with an admin connection: it creates the indexes
(which also creates both databases), the write-back role (``createRole``, or
``updateRole`` when it exists) and every user (``createUser``, or
``updateUser`` with the new password and roles when it exists), so re-running
it rotates passwords and repairs roles instead of failing. Users live in the
``admin`` auth database; services connect with ``?authSource=admin``. With
``shard`` set it also applies :mod:`signal_export.sharding` (the shard keys, through a
mongos; or only their indexes), after the indexes and before the users. The
compose stack runs it as its one-shot ``bootstrap-users`` service (there is
no second copy of the plan). Not for: passwords' origin
(``signal_export.security.secrets``) or MongoDB server configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from signal_export.errors import BridgeError
from signal_export.settings import Settings
from signal_export.sharding import ShardingError, apply_sharding, plan_sharding, require_mongos
from signal_export.store import ensure_market_indexes, ensure_runs_indexes, ensure_signal_indexes

log = logging.getLogger(__name__)

WRITEBACK_ROLE = "signalBridgeStrategyWriteback"
WRITEBACK_ACTIONS = ("find", "insert", "update", "remove", "createIndex")
MIN_PASSWORD_LENGTH = 12
PLACEHOLDER_PASSWORDS = frozenset({"change_me", "changeme", "password", "secret", "example"})
COMMAND_NOT_FOUND = 59
USER_EXISTS = 51003
ROLE_EXISTS = 51002
#: ``BootstrapConfig.shard``: shard through a mongos, or only create the shard keys' indexes.
SHARD_APPLY, SHARD_INDEXES_ONLY = "apply", "indexes-only"


@dataclass(frozen=True)
class ServiceUser:
    """A service account: its key, the env variables of its name and password, its default name."""

    key: str
    default_name: str
    name_env: str
    password_env: str


SERVICE_USERS: tuple[ServiceUser, ...] = (
    ServiceUser("exporter", "signal_exporter", "MONGO_EXPORTER_USER", "MONGO_EXPORTER_PASSWORD"),
    ServiceUser("strategy", "signal_strategy", "MONGO_STRATEGY_USER", "MONGO_STRATEGY_PASSWORD"),
    ServiceUser("monitor", "signal_monitor", "MONGO_MONITOR_USER", "MONGO_MONITOR_PASSWORD"),
    ServiceUser("ingest", "signal_ingest", "MONGO_INGEST_USER", "MONGO_INGEST_PASSWORD"),
)
SERVICE_KEYS = tuple(u.key for u in SERVICE_USERS)


class BootstrapError(BridgeError, RuntimeError):
    """The plan cannot be applied; the message names the user/role and never a password."""


def plan_user_roles(signals_db: str, market_db: str,
                    writeback_collections: Sequence[str] = ()) -> dict[str, list[dict[str, str]]]:
    """Roles of every service user (key -> MongoDB role documents)."""
    if signals_db == market_db:
        raise BootstrapError(f"signals DB and market DB must differ (both {signals_db!r}): "
                             "separate databases keep the roles apart")
    strategy = [{"role": "read", "db": signals_db}]
    if writeback_collections:
        strategy.append({"role": WRITEBACK_ROLE, "db": signals_db})
    return {
        "exporter": [{"role": "readWrite", "db": signals_db},
                     {"role": "readWrite", "db": market_db}],
        "strategy": strategy,
        "monitor": [{"role": "read", "db": signals_db}, {"role": "read", "db": market_db}],
        "ingest": [{"role": "readWrite", "db": signals_db}],
    }


def writeback_privileges(signals_db: str, collections: Sequence[str]) -> list[dict]:
    """Privileges of the write-back role: read/write on exactly these collections."""
    return [{"resource": {"db": signals_db, "collection": name},
             "actions": list(WRITEBACK_ACTIONS)} for name in collections]


@dataclass(frozen=True)
class BootstrapConfig:
    """What to create: databases, which users (name + password), optional write-back."""

    signals_db: str
    market_db: str
    users: Mapping[str, str]  # key -> user name
    passwords: Mapping[str, str] = field(repr=False)  # key -> password (never printed)
    auth_db: str = "admin"
    writeback_collections: tuple[str, ...] = ()
    settings: Settings = field(default_factory=Settings)
    shard: str | None = None  # None, SHARD_APPLY or SHARD_INDEXES_ONLY

    def __post_init__(self) -> None:
        if self.shard not in (None, SHARD_APPLY, SHARD_INDEXES_ONLY):
            raise BootstrapError(f"shard: {self.shard!r} is not one of "
                                 f"{[SHARD_APPLY, SHARD_INDEXES_ONLY]}")
        unknown = sorted(set(self.users) - set(SERVICE_KEYS))
        if unknown:
            raise BootstrapError(f"unknown service user(s) {unknown}; known: {list(SERVICE_KEYS)}")
        for key in self.users:
            check_password(key, self.passwords.get(key))


def check_password(key: str, password: str | None) -> None:
    """Reject a missing, short or placeholder password (naming the user, not the value)."""
    env = next(u.password_env for u in SERVICE_USERS if u.key == key)
    if not password:
        raise BootstrapError(f"{key} user: no password (set {env} or {env}_FILE)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BootstrapError(f"{key} user: password from {env} is too short "
                             f"(minimum {MIN_PASSWORD_LENGTH} characters)")
    if password.strip().lower() in PLACEHOLDER_PASSWORDS:
        raise BootstrapError(f"{key} user: password from {env} is a placeholder; "
                             "generate one, e.g. `openssl rand -base64 24`")


@dataclass
class BootstrapReport:
    """What :func:`bootstrap` did, one line per object (no passwords)."""

    actions: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.actions.append(line)
        log.info("bootstrap: %s", line)


def ensure_databases(client: MongoClient, config: BootstrapConfig, report: BootstrapReport) -> None:
    """Create the collections' indexes, which also creates both databases."""
    s = config.settings
    signals = client[config.signals_db]
    ensure_signal_indexes(signals[s.collection], s.signals_ttl_seconds,
                          history=signals[s.history_collection_name],
                          history_ttl_seconds=s.history_ttl_seconds)
    ensure_runs_indexes(signals[s.export_runs_collection])
    ensure_market_indexes(client[config.market_db], s)
    report.add(f"indexes ensured on {config.signals_db}.{s.collection}, "
               f"{config.signals_db}.{s.history_collection_name}, "
               f"{config.signals_db}.{s.export_runs_collection}, {config.market_db}."
               f"{s.market_1d_collection}, {config.market_db}.{s.market_1m_collection}")


def ensure_writeback_role(db: Database, collections: Sequence[str],
                          report: BootstrapReport) -> None:
    """Create or update the custom role giving write access to the write-back collections only."""
    privileges = writeback_privileges(db.name, collections)
    try:
        existing = db.command("rolesInfo", {"role": WRITEBACK_ROLE, "db": db.name})
    except OperationFailure as exc:
        if exc.code == COMMAND_NOT_FOUND:
            raise BootstrapError(
                f"write-back needs the custom role {WRITEBACK_ROLE} on {db.name}, but this server "
                "has no role management (rolesInfo/createRole: CommandNotFound). Use a real "
                "MongoDB, or leave write-back disabled (the strategy user then stays read-only)"
            ) from None
        raise
    if existing.get("roles"):
        db.command("updateRole", WRITEBACK_ROLE, privileges=privileges, roles=[])
        report.add(f"updated role {WRITEBACK_ROLE}@{db.name} ({', '.join(collections)})")
    else:
        db.command("createRole", WRITEBACK_ROLE, privileges=privileges, roles=[])
        report.add(f"created role {WRITEBACK_ROLE}@{db.name} ({', '.join(collections)})")


def ensure_user(db: Database, name: str, password: str, roles: list[dict[str, str]],
                report: BootstrapReport) -> str:
    """``createUser``, or ``updateUser`` (password and roles) when it exists; says which."""
    info = db.command("usersInfo", {"user": name, "db": db.name})
    if not info.get("users"):
        try:
            db.command("createUser", name, pwd=password, roles=roles)
            report.add(f"created user {name}@{db.name} with {_roles_text(roles)}")
            return "created"
        except OperationFailure as exc:
            if exc.code != USER_EXISTS:  # created concurrently: fall through to update
                raise
    db.command("updateUser", name, pwd=password, roles=roles)
    report.add(f"updated user {name}@{db.name} (password and roles: {_roles_text(roles)})")
    return "updated"


def _roles_text(roles: list[dict[str, str]]) -> str:
    return ", ".join(f"{r['role']}@{r['db']}" for r in roles)


def bootstrap(client: MongoClient, config: BootstrapConfig) -> BootstrapReport:
    """Apply the plan with an admin client (needs userAdmin/root rights); idempotent."""
    report = BootstrapReport()
    plan = plan_user_roles(config.signals_db, config.market_db, config.writeback_collections)
    try:
        if config.shard:  # first: a plan that cannot work, or a non-mongos, refuses up front
            shards = plan_sharding(config.settings, config.signals_db, config.market_db)
            if config.shard == SHARD_APPLY:
                require_mongos(client)
        if config.writeback_collections and "strategy" in config.users:  # first: may refuse
            ensure_writeback_role(client[config.signals_db], config.writeback_collections, report)
        ensure_databases(client, config, report)
        if config.shard:
            for line in apply_sharding(client, shards,
                                       indexes_only=config.shard == SHARD_INDEXES_ONLY):
                report.add(line)
        auth_db = client[config.auth_db]
        for key, name in config.users.items():
            ensure_user(auth_db, name, config.passwords[key], plan[key], report)
    except ShardingError as exc:
        raise BootstrapError(str(exc)) from None
    except OperationFailure as exc:
        if exc.code == 13:
            raise BootstrapError(
                "the admin URI's user may not manage users/indexes (code 13 Unauthorized): use a "
                "user with root, or userAdminAnyDatabase + readWriteAnyDatabase"
                + (" + clusterManager (sharding)" if config.shard else "")) from None
        if exc.code == 18:
            raise BootstrapError("authentication with the admin URI failed (code 18): check "
                                 "MONGO_ADMIN_URI / MONGO_ADMIN_URI_FILE") from None
        raise BootstrapError(f"bootstrap failed: {type(exc).__name__} code {exc.code}: "
                             f"{exc.details.get('errmsg') if exc.details else ''}") from None
    return report


def service_uri(host_uri: str, user: str, password: str, auth_db: str = "admin") -> str:
    """A service URI ``mongodb://user:password@hosts/?authSource=admin`` from a host URI."""
    from urllib.parse import quote_plus, urlsplit

    parts = urlsplit(host_uri)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    return (f"{parts.scheme}://{quote_plus(user)}:{quote_plus(password)}@{hosts}/"
            f"?authSource={auth_db}")
