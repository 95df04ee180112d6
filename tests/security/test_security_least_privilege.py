"""Least-privilege users: what each service account may and may not do (SPEC §7).

Runs against an auth-enabled server (local dev server with ``--auth``, or a
real MongoDB through ``MONGO_TEST_ADMIN_URI``). Denials must be mongod's
code 13 Unauthorized; a wrong password code 18 with a message that names the
user but never the password.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pymongo.errors import OperationFailure

from signal_export.security.bootstrap import (
    SERVICE_KEYS,
    BootstrapConfig,
    BootstrapError,
    bootstrap,
    plan_user_roles,
)
from signal_export.security.login import MongoLoginError, check_login

SIGNAL = {"strategy_id": "s1", "pair": "BTC/USDT", "timeframe": "1h",
          "ts": datetime(2026, 1, 1, tzinfo=UTC), "action": "enter_long"}


def _config(db_names, passwords=None, writeback=()):
    tag = uuid.uuid4().hex[:6]
    users = {key: f"{key}_{tag}" for key in SERVICE_KEYS}
    passwords = passwords or {key: f"{key}-Pw-{uuid.uuid4().hex}" for key in SERVICE_KEYS}
    return BootstrapConfig(signals_db=db_names[0], market_db=db_names[1], users=users,
                           passwords=passwords, writeback_collections=tuple(writeback))


@pytest.fixture
def applied(auth_server, admin_client, db_names):
    config = _config(db_names)
    bootstrap(admin_client, config)
    clients = {}

    def login(key):
        if key not in clients:
            clients[key] = auth_server.client(
                auth_server.uri(config.users[key], config.passwords[key]))
        return clients[key]

    admin_client[db_names[0]].crypto_signals.insert_one(dict(SIGNAL))
    yield config, login
    for client in clients.values():
        client.close()
    for name in config.users.values():
        admin_client.admin.command("dropUser", name)
    for name in db_names:
        admin_client.drop_database(name)


def _denied(call) -> OperationFailure:
    with pytest.raises(OperationFailure) as err:
        call()
    assert err.value.code == 13, err.value.details
    return err.value


def test_strategy_user_reads_signals_but_cannot_insert_update_or_delete(applied, db_names):
    config, login = applied
    signals = login("strategy")[db_names[0]].crypto_signals
    assert signals.find_one({"strategy_id": "s1"})["pair"] == "BTC/USDT"
    _denied(lambda: signals.insert_one({**SIGNAL, "strategy_id": "forged"}))
    _denied(lambda: signals.update_one({"strategy_id": "s1"}, {"$set": {"action": "exit_long"}}))
    _denied(lambda: signals.delete_many({}))
    _denied(lambda: signals.drop())
    assert signals.find_one({"strategy_id": "s1"})["action"] == "enter_long"


def test_strategy_user_cannot_read_market_db(applied, db_names):
    _, login = applied
    _denied(lambda: login("strategy")[db_names[1]].crypto_market.find_one())


def test_exporter_writes_signals_and_market_data(applied, db_names):
    _, login = applied
    client = login("exporter")
    client[db_names[0]].crypto_signals.insert_one({**SIGNAL, "strategy_id": "s2"})
    client[db_names[1]].crypto_market.insert_one({"symbol": "BINANCE:BTCUSDT", "date": "20260101"})
    assert client[db_names[0]].crypto_signals.count_documents({}) == 2


def test_exporter_cannot_drop_databases_or_touch_other_databases(applied, admin_client, db_names):
    _, login = applied
    other = f"other_{uuid.uuid4().hex[:6]}"
    admin_client[other].secrets.insert_one({"k": 1})
    try:
        client = login("exporter")
        _denied(lambda: client.drop_database(db_names[0]))
        _denied(lambda: client.drop_database(db_names[1]))
        _denied(lambda: client[other].secrets.find_one())
        _denied(lambda: client[other].secrets.insert_one({"k": 2}))
        _denied(lambda: client.admin.command("createUser", "sneaky", pwd="x" * 16,
                                             roles=["root"]))
        assert admin_client[other].secrets.count_documents({}) == 1
    finally:
        admin_client.drop_database(other)


def test_monitor_user_is_read_only_on_both_databases(applied, db_names):
    _, login = applied
    client = login("monitor")
    assert client[db_names[0]].crypto_signals.count_documents({}) == 1
    client[db_names[1]].crypto_market.find_one()
    _denied(lambda: client[db_names[0]].crypto_signals.insert_one({"x": 1}))
    _denied(lambda: client[db_names[1]].crypto_market.insert_one({"x": 1}))


def test_ingest_user_writes_signals_only(applied, db_names):
    _, login = applied
    client = login("ingest")
    client[db_names[0]].crypto_signals.insert_one({**SIGNAL, "strategy_id": "hook"})
    _denied(lambda: client[db_names[1]].crypto_market.insert_one({"x": 1}))


def test_unauthenticated_client_is_refused(auth_server, applied, db_names):
    client = auth_server.client(auth_server.bare_uri)
    try:
        _denied(lambda: client[db_names[0]].crypto_signals.find_one())
        _denied(lambda: client[db_names[0]].crypto_signals.insert_one({"x": 1}))
    finally:
        client.close()


def test_wrong_password_fails_with_code_18_and_a_message_without_the_password(auth_server,
                                                                              applied):
    config, _ = applied
    wrong = "Wr0ng-" + uuid.uuid4().hex
    uri = auth_server.uri(config.users["strategy"], wrong)
    client = auth_server.client(uri)
    try:
        with pytest.raises(MongoLoginError) as err:
            check_login(client, uri)
    finally:
        client.close()
    text = str(err.value)
    assert err.value.code == 18
    assert config.users["strategy"] in text and "authentication failed" in text
    assert wrong not in text and wrong not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_rerun_updates_password_and_roles_instead_of_failing(auth_server, admin_client,
                                                            applied, db_names):
    config, _ = applied
    rotated = {key: f"rotated-{key}-{uuid.uuid4().hex}" for key in SERVICE_KEYS}
    again = BootstrapConfig(signals_db=config.signals_db, market_db=config.market_db,
                            users=config.users, passwords=rotated)
    report = bootstrap(admin_client, again)
    assert sum("updated user" in line for line in report.actions) == len(SERVICE_KEYS)
    assert not any("created user" in line for line in report.actions)
    old = auth_server.client(auth_server.uri(config.users["monitor"], config.passwords["monitor"]))
    new = auth_server.client(auth_server.uri(config.users["monitor"], rotated["monitor"]))
    try:
        with pytest.raises(OperationFailure) as err:
            old[db_names[0]].crypto_signals.find_one()
        assert err.value.code == 18
        assert new[db_names[0]].crypto_signals.count_documents({}) == 1
    finally:
        old.close()
        new.close()
    info = admin_client.admin.command("usersInfo", {"user": config.users["strategy"],
                                                    "db": "admin"})
    roles = {(r["role"], r["db"]) for r in info["users"][0]["roles"]}
    assert roles == {("read", db_names[0])}


def test_bootstrap_report_and_errors_never_contain_passwords(admin_client, db_names):
    config = _config(db_names)
    try:
        report = bootstrap(admin_client, config)
        text = "\n".join(report.actions) + repr(config)
        for password in config.passwords.values():
            assert password not in text
    finally:
        for name in config.users.values():
            admin_client.admin.command("dropUser", name)
        for name in db_names:
            admin_client.drop_database(name)


@pytest.mark.parametrize("bad", ["", "Sh0rt-pw", "CHANGE_ME"])
def test_missing_short_or_placeholder_password_is_rejected_naming_the_variable(db_names, bad):
    passwords = {key: f"{key}-Pw-{uuid.uuid4().hex}" for key in SERVICE_KEYS}
    passwords["strategy"] = bad
    with pytest.raises(BootstrapError, match="MONGO_STRATEGY_PASSWORD") as err:
        _config(db_names, passwords=passwords)
    assert not bad or bad not in str(err.value)


def test_signals_and_market_must_be_separate_databases():
    with pytest.raises(BootstrapError, match="must differ"):
        plan_user_roles("same", "same")


def test_plan_gives_strategy_a_writeback_role_only_when_enabled():
    assert plan_user_roles("sig", "mkt")["strategy"] == [{"role": "read", "db": "sig"}]
    with_wb = plan_user_roles("sig", "mkt", ["ft_trades"])["strategy"]
    assert {"role": "read", "db": "sig"} in with_wb and len(with_wb) == 2
    assert all(r["role"] not in ("readWrite", "dbOwner") for r in with_wb)
