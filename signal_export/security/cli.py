"""``signal-bootstrap-users``: create the least-privilege MongoDB users and databases.

Reads the admin URI from ``MONGO_ADMIN_URI`` (or ``MONGO_ADMIN_URI_FILE``) and
each service password from ``MONGO_<SERVICE>_PASSWORD`` (or ``..._FILE``), in
the process environment or ``--env-file``. Passwords never appear on the
command line, on stdout or in logs; ``--admin-uri`` is refused when it
carries a password (it would show in ``ps``). Safe to re-run: existing users
get the current password and roles. The compose stack runs it as the one-shot
``bootstrap-users`` service before every start (docker/compose.yaml). ``--shard``
(admin URI = a mongos) also shards the signal and minute-bar collections on the keys
of ``docs/SCALING.md``; ``--shard-indexes-only`` creates just those keys' indexes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from pymongo.errors import PyMongoError

from signal_export.errors import ConfigError
from signal_export.logs import configure_logging
from signal_export.security.bootstrap import (
    SERVICE_KEYS,
    SERVICE_USERS,
    SHARD_APPLY,
    SHARD_INDEXES_ONLY,
    BootstrapConfig,
    BootstrapError,
    bootstrap,
    plan_user_roles,
)
from signal_export.security.login import check_login, describe_uri, login_error
from signal_export.security.secrets import SecretError, load_env_file, read_secret
from signal_export.settings import load_settings
from signal_export.sharding import ShardingError, plan_sharding
from signal_export.store import connect

log = logging.getLogger("signal_export.security.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signal-bootstrap-users", description=__doc__.split("\n")[0])
    p.add_argument("--env-file", default=".env", help="dotenv file with the variables (default "
                   ".env; missing is fine)")
    p.add_argument("--admin-uri", help="admin URI WITHOUT password (host part only); default "
                   "MONGO_ADMIN_URI / MONGO_ADMIN_URI_FILE")
    p.add_argument("--signals-db", help="signals database (default EXT_SIG_DB or 'signals')")
    p.add_argument("--market-db", help="market database (default MARKET_DB or 'market')")
    p.add_argument("--auth-db", default="admin", help="database the users live in")
    p.add_argument("--users", default=",".join(SERVICE_KEYS),
                   help=f"comma list of service users to create (default: all of {SERVICE_KEYS})")
    p.add_argument("--writeback-collections", default="",
                   help="comma list of collections in the signals DB the strategy may write "
                        "(trades/positions write-back); empty = strategy is read-only")
    shard = p.add_mutually_exclusive_group()
    shard.add_argument("--shard", dest="shard", action="store_const", const=SHARD_APPLY,
                       help="also shard the collections (docs/SCALING.md); the admin URI must "
                            "be a mongos")
    shard.add_argument("--shard-indexes-only", dest="shard", action="store_const",
                       const=SHARD_INDEXES_ONLY,
                       help="create only the indexes the shard keys need (any server)")
    p.add_argument("--plan", action="store_true", help="print users and roles (and with "
                   "--shard the sharding commands), change nothing")
    p.add_argument("--log-level", help="default LOG_LEVEL or INFO")
    p.add_argument("--json-logs", action="store_true", default=None,
                   help="JSON lines (default: LOG_JSON)")
    return p


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level, json=args.json_logs)
    file_values = load_env_file(args.env_file)
    settings = load_settings(env_file=args.env_file if file_values else None)
    signals_db = args.signals_db or settings.db
    market_db = args.market_db or settings.market_db
    keys = _split(args.users)
    writeback = _split(args.writeback_collections)
    try:
        plan = plan_user_roles(signals_db, market_db, writeback)
        names = {}
        for key in keys:
            user = next((u for u in SERVICE_USERS if u.key == key), None)
            if user is None:
                raise BootstrapError(f"--users: unknown service user {key!r}; known: "
                                     f"{list(SERVICE_KEYS)}")
            names[key] = (read_secret(user.name_env, env_file_values=file_values,
                                      required=False) or user.default_name)
        if args.plan:
            shown = {"auth_db": args.auth_db, "users": {names[k]: plan[k] for k in keys}}
            if args.shard:
                shown["sharding"] = plan_sharding(settings, signals_db, market_db).as_dict()
            print(json.dumps(shown, indent=2))
            return 0
        passwords = {key: read_secret(next(u.password_env for u in SERVICE_USERS
                                           if u.key == key), env_file_values=file_values)
                     for key in keys}
        config = BootstrapConfig(signals_db=signals_db, market_db=market_db, users=names,
                                 passwords=passwords, auth_db=args.auth_db,
                                 writeback_collections=writeback, settings=settings,
                                 shard=args.shard)
        admin_uri = _admin_uri(args.admin_uri, file_values)
        client = connect(admin_uri, app_name="signal-bootstrap-users")
    except (ConfigError, BootstrapError, ShardingError) as exc:  # secrets, settings, bad URI
        print(f"signal-bootstrap-users: {exc}", file=sys.stderr)
        return 2
    try:
        check_login(client, admin_uri)
        report = bootstrap(client, config)
    except BootstrapError as exc:
        print(f"signal-bootstrap-users: {exc}", file=sys.stderr)
        return 1
    except PyMongoError as exc:
        print(f"signal-bootstrap-users: {login_error(admin_uri, exc)}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # MongoLoginError
        print(f"signal-bootstrap-users: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for line in report.actions:
        print(line)
    print(f"done: {len(config.users)} users on {describe_uri(admin_uri)}; services connect with "
          f"?authSource={args.auth_db}")
    return 0


def _admin_uri(cli_value: str | None, file_values: dict[str, str]) -> str:
    if cli_value:
        if "@" in cli_value.split("?", 1)[0]:
            raise SecretError("--admin-uri must not carry credentials (they would show in the "
                              "process list): put the URI in MONGO_ADMIN_URI or "
                              "MONGO_ADMIN_URI_FILE")
        return cli_value
    value = read_secret("MONGO_ADMIN_URI", env_file_values=file_values)
    assert value is not None
    return value


if __name__ == "__main__":
    raise SystemExit(main())
