"""The compose init script creates exactly the least-privilege users of the Python plan.

``docker/mongo-init/10-create-users.js`` runs under mongosh in the mongo
image, which is not available here. Its PLAN block is compared with
:func:`plan_user_roles`; then the script itself runs under node with a
recording stand-in for mongosh's ``db`` (tests/deploy/mongo_init_harness.js)
and the operations it issues are replayed with pymongo against an
auth-enabled server, where the resulting users must have the promised rights.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

from signal_export.contract import SIGNAL_KEY
from signal_export.security.bootstrap import (
    SERVICE_USERS,
    WRITEBACK_ACTIONS,
    WRITEBACK_ROLE,
    plan_user_roles,
)

REPO = Path(__file__).resolve().parents[2]
INIT_JS = REPO / "docker" / "mongo-init" / "10-create-users.js"
HARNESS = Path(__file__).with_name("mongo_init_harness.js")
NODE = shutil.which("node")


def _plan() -> dict:
    text = INIT_JS.read_text()
    block = re.search(r"// BEGIN PLAN\nconst PLAN = (?P<json>\{.*?\});\n// END PLAN", text, re.S)
    assert block, "PLAN block not found"
    return json.loads(block["json"])


def test_init_script_plan_equals_the_python_plan():
    plan = _plan()
    expected = plan_user_roles("@signals", "@market")
    assert plan["auth_db"] == "admin"
    assert plan["writeback_role"] == WRITEBACK_ROLE
    assert plan["writeback_actions"] == list(WRITEBACK_ACTIONS)
    assert set(plan["users"]) == {u.key for u in SERVICE_USERS}
    for user in SERVICE_USERS:
        spec = plan["users"][user.key]
        assert (spec["name_env"], spec["default_name"], spec["password_env"]) == (
            user.name_env, user.default_name, user.password_env)
        assert spec["roles"] == expected[user.key], user.key


def test_init_script_signal_index_matches_the_contract_key():
    text = INIT_JS.read_text()
    keys = re.search(r"createIndex\(\s*\{ (strategy_id.*?) \}", text)
    assert keys and [k.split(":")[0].strip() for k in keys[1].split(",")] == list(SIGNAL_KEY)


def _run_init(env: dict[str, str], existing_users: str = "") -> list[dict]:
    assert NODE, "node is needed to run the init script harness"
    run_env = {"PATH": os.environ.get("PATH", ""), **env, "EXISTING_USERS": existing_users}
    proc = subprocess.run([NODE, str(HARNESS), str(INIT_JS)], env=run_env, capture_output=True,
                          text=True, timeout=60)
    ops = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode:
        raise RuntimeError(ops[-1]["message"] if ops else proc.stderr)
    return ops


def _replay(client, ops: list[dict]) -> None:
    for op in ops:
        if op["op"] == "createUser":
            client[op["db"]].command("createUser", op["user"], pwd=op["pwd"], roles=op["roles"],
                                     mechanisms=op["mechanisms"])
        elif op["op"] == "updateUser":
            client[op["db"]].command("updateUser", op["user"], pwd=op["pwd"], roles=op["roles"])
        elif op["op"] == "createIndex":
            client[op["db"]][op["coll"]].create_index(list(op["keys"].items()),
                                                      **op["options"])


@pytest.fixture
def init_env(tmp_path, db_names):
    tag = uuid.uuid4().hex[:6]
    env = {"EXT_SIG_DB": db_names[0], "MARKET_DB": db_names[1]}
    for user in SERVICE_USERS:
        env[user.name_env] = f"{user.key}_{tag}"
        env[user.password_env] = f"{user.key}-Init-{uuid.uuid4().hex}"
    secret_file = tmp_path / "strategy_pw"  # one password through the *_FILE convention
    secret_file.write_text(env.pop("MONGO_STRATEGY_PASSWORD") + "\n")
    env["MONGO_STRATEGY_PASSWORD_FILE"] = str(secret_file)
    return env


def test_init_script_users_have_least_privilege_on_a_real_server(init_env, auth_server,
                                                                 admin_client, db_names):
    ops = _run_init(init_env)
    printed = " ".join(op.get("text", "") for op in ops if op["op"] == "print")
    assert "created strategy user" in printed
    for value in init_env.values():
        if "-Init-" in value:
            assert value not in printed
    _replay(admin_client, ops)
    strategy_pw = Path(init_env["MONGO_STRATEGY_PASSWORD_FILE"]).read_text().strip()
    strategy = auth_server.client(auth_server.uri(init_env["MONGO_STRATEGY_USER"], strategy_pw))
    exporter = auth_server.client(auth_server.uri(init_env["MONGO_EXPORTER_USER"],
                                                  init_env["MONGO_EXPORTER_PASSWORD"]))
    try:
        exporter[db_names[0]].crypto_signals.insert_one({"strategy_id": "s", "x": 1})
        exporter[db_names[1]].crypto_market.insert_one({"symbol": "BINANCE:BTCUSDT",
                                                        "date": "20260101"})
        assert strategy[db_names[0]].crypto_signals.count_documents({}) == 1
        with pytest.raises(OperationFailure) as err:
            strategy[db_names[0]].crypto_signals.insert_one({"strategy_id": "forged"})
        assert err.value.code == 13
        index = admin_client[db_names[0]].crypto_signals.index_information()["signal_key"]
        assert index["unique"] and [k for k, _ in index["key"]] == list(SIGNAL_KEY)
    finally:
        strategy.close()
        exporter.close()
        for user in SERVICE_USERS:
            admin_client.admin.command("dropUser", init_env[user.name_env])
        for name in db_names:
            admin_client.drop_database(name)


def test_init_script_updates_existing_users_instead_of_failing(init_env):
    existing = ",".join(f"admin.{init_env[u.name_env]}" for u in SERVICE_USERS)
    ops = _run_init(init_env, existing_users=existing)
    kinds = [op["op"] for op in ops if op["op"] in ("createUser", "updateUser")]
    assert kinds == ["updateUser"] * len(SERVICE_USERS)


def test_init_script_fails_loudly_on_a_missing_password(init_env):
    del init_env["MONGO_MONITOR_PASSWORD"]
    with pytest.raises(RuntimeError, match="MONGO_MONITOR_PASSWORD is not set"):
        _run_init(init_env)


def test_init_script_refuses_one_database_for_signals_and_market(init_env):
    init_env["MARKET_DB"] = init_env["EXT_SIG_DB"]
    with pytest.raises(RuntimeError, match="must differ"):
        _run_init(init_env)


def test_init_script_writeback_role_covers_only_the_listed_collections(init_env):
    init_env["MONGO_STRATEGY_WRITEBACK_COLLECTIONS"] = "ft_trades, ft_positions"
    ops = _run_init(init_env)
    role = next(op for op in ops if op["op"] == "createRole")
    assert role["role"] == WRITEBACK_ROLE
    assert {p["resource"]["collection"] for p in role["privileges"]} == {"ft_trades",
                                                                         "ft_positions"}
    strategy = next(op for op in ops if op["op"] == "createUser"
                    and op["user"] == init_env["MONGO_STRATEGY_USER"])
    assert {r["role"] for r in strategy["roles"]} == {"read", WRITEBACK_ROLE}
