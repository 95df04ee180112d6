"""Security of the local MongoDB dev server: each attack of issue 18, replayed.

With real pymongo (or raw OP_MSG where pymongo cannot choose its source address)
against real server processes:

- server-side code (``$where``, ``$function``, ``$accumulator``) is refused in
  every place a filter, pipeline or update condition can hold it, with mongod's
  error shape (mongod 7.0 with ``security.javascriptEnabled: false``), and a
  read-only user's ``$where`` exploit creates no file;
- a ``userAdmin`` of one database cannot grant roles on another (``root@admin``);
- the localhost exception holds only for loopback clients and only while no user
  exists;
- a non-loopback bind without ``--auth`` and an admin user exits non-zero with a
  clear message; every start logs the development-server banner.

Skipped when ``MONGO_TEST_URI`` points the suite at a real MongoDB.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bson
import pymongo
import pytest
from auth_server import auth_server_at, client_for
from pymongo import UpdateOne
from pymongo.errors import OperationFailure

from devservers.mongo import cli, safety
from devservers.mongo.auth import AuthManager, ConnectionAuth, is_loopback
from devservers.mongo.errors import MongoError
from devservers.mongo.process import LocalMongoProcess
from devservers.mongo.storage import Storage

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_TEST_URI")), reason="needs its own local server process"
)

REPO = Path(__file__).resolve().parents[2]
ADMIN, ADMIN_PWD = "sec-admin", "sec-Admin-pw-1"
WHERE_CODE, JS_CODE, BAD_VALUE = 6108304, 31264, 2
JS_FUNCTION = {"$function": {"body": "function() { return true; }", "args": [], "lang": "js"}}
JS_ACCUMULATOR = {"$accumulator": {
    "init": "function() { return 0; }", "accumulate": "function(s) { return s; }",
    "accumulateArgs": [], "merge": "function(a, b) { return a; }", "lang": "js"}}


def _exploit(path: Path) -> str:
    """A ``$where`` that escapes ``eval`` (empty ``__builtins__``) and writes ``path``.

    It works against mongomock's matcher on its own (test below), so the refusals are
    not vacuous.
    """
    return ("[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "
            f"'catch_warnings'][0]()._module.__builtins__['open']('{path}', 'w')"
            ".write('pwned') > 0")


def _refused(call, code: int = WHERE_CODE) -> OperationFailure:
    with pytest.raises(OperationFailure) as err:
        call()
    assert err.value.code == code, err.value.details
    expected = {WHERE_CODE: ("Location6108304", "no globalScriptEngine in $where parsing"),
                JS_CODE: ("Location31264", "Cannot run server-side javascript without the "
                                           "javascript engine enabled"),
                BAD_VALUE: ("BadValue", "$where is not allowed in this context")}[code]
    assert err.value.details["codeName"] == expected[0]
    assert err.value.details["errmsg"] == expected[1]
    return err.value


# ---------------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[LocalMongoProcess]:
    with auth_server_at(tmp_path_factory.mktemp("mongo-sec"), ADMIN, ADMIN_PWD) as srv:
        yield srv


_client = client_for


@pytest.fixture(scope="module")
def admin(auth_server) -> Iterator[pymongo.MongoClient]:
    client = _client(auth_server, ADMIN, ADMIN_PWD)
    client.appdb.command("createUser", "reader", pwd="reader-pw", roles=["read"])
    client.appdb.command("createUser", "useradm", pwd="useradm-pw", roles=["userAdmin"])
    client.appdb.command("createUser", "victim", pwd="victim-pw", roles=["read"])
    client.appdb.seed.insert_many([{"_id": i, "v": i} for i in range(3)])
    yield client
    client.close()


def _as(server: LocalMongoProcess, user: str) -> pymongo.MongoClient:
    return _client(server, user, f"{user}-pw", "appdb")


@pytest.fixture
def coll(mongo_db):
    """A collection on the suite's (unauthenticated) server, with documents to change."""
    c = mongo_db.docs
    c.insert_many([{"_id": 1, "a": 1, "arr": [{"x": 1}, {"x": 2}]},
                   {"_id": 2, "a": 2, "arr": [{"x": 3}]}])
    mongo_db.other.insert_one({"_id": 1, "k": 1})
    return c


def _snapshot(c) -> list:
    return list(c.find({}, sort=[("_id", 1)]))


# ---------------------------------------------------------------------------- $where & JS
def test_the_exploit_payload_is_real_against_plain_mongomock(tmp_path):
    """Without the dev server's guard, mongomock's $where runs the payload (a file appears)."""
    target = tmp_path / "proof"
    code = ("import warnings; warnings.simplefilter('ignore');"
            "from mongomock_ng.filtering import filter_applies;"
            f"print(filter_applies({{'$where': {_exploit(target)!r}}}, {{'a': 1}}))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
    assert target.read_text() == "pwned"


def test_read_only_user_where_exploit_is_refused_and_creates_no_file(auth_server, admin,
                                                                     tmp_path):
    target = tmp_path / "pwned-by-where"
    reader = _as(auth_server, "reader")
    assert reader.appdb.seed.find_one({"_id": 0}) == {"_id": 0, "v": 0}
    _refused(lambda: reader.appdb.seed.find_one({"$where": _exploit(target)}))
    _refused(lambda: reader.appdb.seed.find_one({"$or": [{"v": 9}, {"$where": _exploit(target)}]}))
    _refused(lambda: list(reader.appdb.seed.aggregate([{"$match": {"$where": _exploit(target)}}])),
             BAD_VALUE)
    assert not target.exists()
    reader.close()


@pytest.mark.parametrize("flt", [
    {"$where": "true"},
    {"$and": [{"a": 1}, {"$where": "true"}]},
    {"$or": [{"a": 5}, {"$and": [{"$where": "true"}]}]},
    {"$nor": [{"$where": "true"}]},
    {"a": {"$not": {"$where": "true"}}},
    {"arr": {"$elemMatch": {"$where": "true"}}},
    {"arr": {"$elemMatch": {"x": 1, "$or": [{"$where": "true"}]}}},
], ids=["top", "and", "or-and", "nor", "not", "elemMatch", "elemMatch-or"])
def test_find_refuses_where_wherever_it_is_nested(coll, flt):
    _refused(lambda: coll.find_one(flt))


def test_find_refuses_where_on_a_missing_collection(mongo_db):
    _refused(lambda: mongo_db.no_such_collection.find_one({"$where": "true"}))


def test_expr_function_is_refused_in_find_and_aggregate(coll):
    _refused(lambda: coll.find_one({"$expr": JS_FUNCTION}), JS_CODE)
    _refused(lambda: coll.find_one({"$and": [{"$expr": {"$eq": [JS_FUNCTION, True]}}]}),
             JS_CODE)
    _refused(lambda: list(coll.aggregate([{"$match": {"$expr": JS_FUNCTION}}])), JS_CODE)
    _refused(lambda: list(coll.aggregate([{"$project": {"y": JS_FUNCTION}}])), JS_CODE)
    _refused(lambda: list(coll.aggregate([{"$addFields": {"y": {"$cond": [
        True, JS_FUNCTION, 1]}}}])), JS_CODE)


def test_count_and_distinct_refuse_where(coll):
    db = coll.database
    _refused(lambda: db.command("count", coll.name, query={"$where": "true"}))
    _refused(lambda: coll.distinct("a", {"$or": [{"$where": "true"}]}))
    _refused(lambda: coll.count_documents({"$where": "true"}), BAD_VALUE)  # an aggregate


def test_update_refuses_where_and_changes_nothing(coll):
    before = _snapshot(coll)
    _refused(lambda: coll.update_one({"$where": "true"}, {"$set": {"hit": 1}}))
    _refused(lambda: coll.update_many({"$and": [{"$where": "true"}]}, {"$set": {"hit": 1}}))
    _refused(lambda: coll.update_one({"_id": 1}, {"$pull": {"arr": {"x": 1, "$where": "true"}}}))
    _refused(lambda: coll.update_one({"_id": 1}, {"$set": {"arr.$[e].hit": 1}},
                                     array_filters=[{"e.x": 1, "$where": "true"}]))
    _refused(lambda: coll.replace_one({"$where": "true"}, {"replaced": True}, upsert=True))
    # a batch holding one such statement is refused before its first statement runs
    _refused(lambda: coll.bulk_write([UpdateOne({"_id": 1}, {"$set": {"hit": 1}}),
                                      UpdateOne({"$where": "true"}, {"$set": {"hit": 2}})],
                                     ordered=False))
    assert _snapshot(coll) == before


def test_delete_and_find_and_modify_refuse_where_and_change_nothing(coll):
    before = _snapshot(coll)
    _refused(lambda: coll.delete_one({"$where": "true"}))
    _refused(lambda: coll.delete_many({"$nor": [{"$where": "false"}]}))
    _refused(lambda: coll.find_one_and_update({"$where": "true"}, {"$set": {"hit": 1}}))
    _refused(lambda: coll.find_one_and_delete({"arr": {"$elemMatch": {"$where": "true"}}}))
    _refused(lambda: coll.find_one_and_update({"_id": 1}, {"$pull": {"arr": {
        "$or": [{"$where": "true"}]}}}))
    assert _snapshot(coll) == before


def test_aggregation_refuses_where_in_every_stage_that_nests_a_pipeline(coll):
    where = {"$match": {"$where": "true"}}
    for pipeline in (
        [where],
        [{"$sort": {"_id": 1}}, where],
        [{"$match": {"$or": [{"a": 1}, {"$where": "true"}]}}],
        [{"$lookup": {"from": "other", "pipeline": [where], "as": "j"}}],
        [{"$lookup": {"from": "other", "let": {"a": "$a"}, "pipeline": [
            {"$facet": {"x": [where]}}], "as": "j"}}],
        [{"$facet": {"ok": [{"$match": {}}], "bad": [where]}}],
        [{"$unionWith": {"coll": "other", "pipeline": [where]}}],
    ):
        _refused(lambda p=pipeline: list(coll.aggregate(p)), BAD_VALUE)


def test_aggregation_refuses_accumulator_and_function_in_group(coll):
    _refused(lambda: list(coll.aggregate([{"$group": {"_id": None, "s": JS_ACCUMULATOR}}])),
             JS_CODE)
    _refused(lambda: list(coll.aggregate([{"$group": {"_id": JS_FUNCTION}}])), JS_CODE)
    _refused(lambda: list(coll.aggregate([{"$facet": {"g": [
        {"$group": {"_id": None, "s": JS_ACCUMULATOR}}]}}])), JS_CODE)
    _refused(lambda: list(coll.aggregate([{"$setWindowFields": {"output": {
        "s": JS_ACCUMULATOR}}}])), JS_CODE)


def test_catalog_commands_refuse_where(coll):
    db = coll.database
    _refused(lambda: db.list_collection_names(filter={"$where": "true"}))
    _refused(lambda: list(db.client.list_databases(filter={"$where": "true"})))
    _refused(lambda: coll.create_index("a", name="partial_where",
                                       partialFilterExpression={"$where": "true"}))
    assert "partial_where" not in coll.index_information()


def test_where_as_a_field_path_string_is_data_not_code(coll):
    """Only operator KEYS are code: a string value "$where" is a field reference or data."""
    coll.insert_one({"_id": 3, "where": "w", "note": "$where"})
    assert coll.find_one({"note": "$where"})["_id"] == 3
    got = list(coll.aggregate([{"$match": {"_id": 3}}, {"$project": {"w": "$where"}}]))
    assert got == [{"_id": 3, "w": "w"}]


@pytest.mark.filterwarnings("ignore:.where uses Python eval:RuntimeWarning")
def test_mongomock_eval_is_unreachable_in_the_server_process():
    """Second line of defence: even past the walker, mongomock's $where never evals."""
    from mongomock_ng.filtering import filter_applies

    from devservers.mongo import queries, updates

    with pytest.raises(MongoError) as err:
        filter_applies({"$where": "True"}, {"a": 1})
    assert err.value.code == WHERE_CODE
    with pytest.raises(MongoError):
        queries.matches({"$or": [{"$where": "True"}]}, {"a": 1})
    with pytest.raises(MongoError):
        updates.apply_update({"arr": [{"x": 1}]}, {"$pull": {"arr": {"x": 1, "$where": "True"}}},
                             is_insert=False)


def test_walker_finds_code_operators_at_any_depth():
    deep: dict = {"$where": "x"}
    for _ in range(200):
        deep = {"$and": [{"a": 1}, deep]}
    with pytest.raises(MongoError) as err:
        safety.check(deep)
    assert err.value.code == WHERE_CODE
    with pytest.raises(MongoError) as err:
        safety.check_command("aggregate", {"aggregate": "c", "pipeline": [{"$match": deep}]})
    assert err.value.code == BAD_VALUE
    for op in ("$function", "$accumulator", "$_internalJsEmit", "$_internalJsReduce"):
        with pytest.raises(MongoError) as err:
            safety.check_command("find", {"find": "c", "filter": {"$expr": {op: {}}}})
        assert err.value.code == JS_CODE
    # data is not code: inserted documents and $set values are stored, never evaluated
    safety.check_command("insert", {"insert": "c", "documents": [{"$where": 1}]})
    safety.check_command("update", {"update": "c", "updates": [
        {"q": {"a": 1}, "u": {"$set": {"s": {"$function": 1}}}}]})


# ---------------------------------------------------------------------------- role grants
def _roles_of(admin_client, user: str, db: str = "appdb") -> list | None:
    users = admin_client[db].command("usersInfo", user)["users"]
    return users[0]["roles"] if users else None


def _unauthorized(call) -> None:
    with pytest.raises(OperationFailure) as err:
        call()
    assert err.value.code == 13
    assert err.value.details["codeName"] == "Unauthorized"


def test_user_admin_of_one_db_cannot_create_a_root_user(auth_server, admin):
    ua = _as(auth_server, "useradm")
    _unauthorized(lambda: ua.appdb.command("createUser", "evil", pwd="evil-pw",
                                           roles=[{"role": "root", "db": "admin"}]))
    _unauthorized(lambda: ua.appdb.command("createUser", "evil", pwd="evil-pw", roles=[
        "read", {"role": "userAdminAnyDatabase", "db": "admin"}]))
    _unauthorized(lambda: ua.appdb.command("createUser", "evil", pwd="evil-pw",
                                           roles=[{"role": "readWrite", "db": "otherdb"}]))
    _unauthorized(lambda: ua.admin.command("createUser", "evil", pwd="evil-pw",
                                           roles=["root"]))
    assert _roles_of(admin, "evil") is None
    assert _roles_of(admin, "evil", "admin") is None
    with pytest.raises(OperationFailure) as err:  # and it cannot log in as such a user
        _client(auth_server, "evil", "evil-pw", "appdb").appdb.seed.find_one()
    assert err.value.code == 18
    # what userAdmin on appdb may do: grant roles on appdb
    ua.appdb.command("createUser", "fine", pwd="fine-pw", roles=["read"])
    assert _roles_of(admin, "fine") == [{"role": "read", "db": "appdb"}]
    ua.close()


def test_user_admin_of_one_db_cannot_grant_or_revoke_roles_elsewhere(auth_server, admin):
    ua = _as(auth_server, "useradm")
    before = _roles_of(admin, "victim")
    _unauthorized(lambda: ua.appdb.command("grantRolesToUser", "victim",
                                           roles=[{"role": "root", "db": "admin"}]))
    _unauthorized(lambda: ua.appdb.command("grantRolesToUser", "useradm",
                                           roles=[{"role": "root", "db": "admin"}]))
    _unauthorized(lambda: ua.appdb.command("updateUser", "victim", roles=[
        "read", {"role": "readWriteAnyDatabase", "db": "admin"}]))
    _unauthorized(lambda: ua.appdb.command("updateUser", "useradm", roles=[
        {"role": "dbOwner", "db": "otherdb"}]))
    assert _roles_of(admin, "victim") == before
    assert _roles_of(admin, "useradm") == [{"role": "userAdmin", "db": "appdb"}]
    # revoking a role on another database needs revokeRole there
    admin.appdb.command("grantRolesToUser", "victim", roles=[{"role": "read", "db": "otherdb"}])
    _unauthorized(lambda: ua.appdb.command("revokeRolesFromUser", "victim",
                                           roles=[{"role": "read", "db": "otherdb"}]))
    assert {"role": "read", "db": "otherdb"} in _roles_of(admin, "victim")
    # an updateUser that would drop that foreign role is a revoke too
    _unauthorized(lambda: ua.appdb.command("updateUser", "victim", roles=["read"]))
    # on its own database it may grant and revoke
    ua.appdb.command("grantRolesToUser", "victim", roles=["readWrite"])
    ua.appdb.command("revokeRolesFromUser", "victim", roles=["readWrite"])
    assert {"role": "readWrite", "db": "appdb"} not in _roles_of(admin, "victim")
    # root (grantRole on every database) may grant root@admin, as on mongod
    admin.appdb.command("grantRolesToUser", "victim", roles=[{"role": "root", "db": "admin"}])
    admin.appdb.command("revokeRolesFromUser", "victim", roles=[{"role": "root", "db": "admin"}])
    ua.close()


# ---------------------------------------------------------------------------- localhost exception
def _non_loopback_ipv4() -> str | None:
    """A non-loopback IPv4 address of this machine that a socket can bind, or None."""
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
        candidates += out.stdout.split()
    with contextlib.suppress(OSError):
        candidates += [i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None,
                                                            socket.AF_INET)]
    for address in candidates:
        if ":" in address or is_loopback(address):
            continue
        try:
            with socket.socket() as probe:
                probe.bind((address, 0))
            return address
        except OSError:
            continue
    return None


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _raw_command(port: int, source: str, db: str, cmd: dict) -> dict:
    """One OP_MSG command to 127.0.0.1:port from ``source`` (pymongo cannot pick it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as sock:
        body = struct.pack("<I", 0) + b"\x00" + bson.encode({**cmd, "$db": db})
        sock.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
        length = struct.unpack("<i", _recv_exactly(sock, 4))[0]
        reply = _recv_exactly(sock, length - 4)
        return bson.decode(reply[12 + 4 + 1:])  # header rest, flagBits, section kind 0


@pytest.fixture
def no_user_server(tmp_path) -> Iterator[LocalMongoProcess]:
    with LocalMongoProcess(tmp_path / "data", auth=True) as srv:
        yield srv


def test_localhost_exception_refused_to_a_non_loopback_client(no_user_server):
    source = _non_loopback_ipv4()
    if source is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    create_root = {"createUser": "intruder", "pwd": "intruder-pw",
                   "roles": [{"role": "root", "db": "admin"}]}
    reply = _raw_command(no_user_server.port, source, "admin", create_root)
    assert reply["ok"] == 0.0 and reply["code"] == 13, reply
    assert reply["codeName"] == "Unauthorized"
    # nothing was created: from loopback, the first user can still be created ...
    local = _client(no_user_server)
    local.admin.command("createUser", "first", pwd="first-pw", roles=["root"])
    first = _client(no_user_server, "first", "first-pw")
    names = [u["user"] for u in first.admin.command("usersInfo", {"forAllDBs": True})["users"]]
    assert names == ["first"]
    with pytest.raises(OperationFailure) as err:
        _client(no_user_server, "intruder", "intruder-pw").admin.command("usersInfo", 1)
    assert err.value.code == 18
    log_text = no_user_server.log_file.read_text()
    assert f"localhost exception refused: client {source} is not on loopback" in log_text
    local.close()
    first.close()


def test_localhost_exception_only_while_no_user_exists(no_user_server):
    local = _client(no_user_server)
    local.admin.command("createUser", "first", pwd="first-pw", roles=["root"])
    _unauthorized(lambda: local.admin.command("createUser", "second", pwd="second-pw",
                                              roles=["root"]))
    _unauthorized(lambda: local.appdb.command("createUser", "third", pwd="third-pw",
                                              roles=["read"]))
    first = _client(no_user_server, "first", "first-pw")
    names = [u["user"] for u in first.admin.command("usersInfo", {"forAllDBs": True})["users"]]
    assert names == ["first"]
    local.close()
    first.close()


@pytest.mark.parametrize("peer,allowed", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.2", False), ("10.1.2.3", False), ("0.0.0.0", False), ("::", False),
    ("fd00::2", False), ("::ffff:10.0.0.1", False), (None, False), ("", False),
    ("not-an-ip", False),
])
def test_localhost_exception_decision(tmp_path, peer, allowed):
    storage = Storage(tmp_path / "d")
    try:
        auth = AuthManager(storage, enabled=True)
        state = ConnectionAuth(1, peer=peer)
        cmd = {"createUser": "u", "pwd": "p", "roles": ["root"]}
        assert is_loopback(peer) is allowed
        if allowed:
            auth.authorize("createuser", "admin", cmd, state)
            auth.ensure_admin("someone", "pw")  # once a user exists: refused even on loopback
        with pytest.raises(MongoError) as err:
            auth.authorize("createuser", "admin", cmd, state)
        assert err.value.code == 13
    finally:
        storage.close()


# ---------------------------------------------------------------------------- start-up rules
def _run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LOCAL_MONGOD_ADMIN_USER", None)
    env.pop("LOCAL_MONGOD_ADMIN_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "devservers.mongo", *args], cwd=str(REPO),
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_wildcard_bind_without_auth_exits_non_zero_with_a_message(tmp_path):
    done = _run_cli("--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert done.returncode == cli.EXIT_REFUSED
    assert "mongodb://" not in done.stdout
    assert "refusing to listen on 0.0.0.0:0" in done.stderr
    assert "authentication is off (no --auth)" in done.stderr
    assert "DEVELOPMENT server, NOT for production" in done.stderr  # banner first
    assert not (tmp_path / "d").exists()  # refused before touching the data dir


def test_wildcard_bind_with_auth_but_no_admin_exits_non_zero(tmp_path):
    done = _run_cli("--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"),
                    "--auth")
    assert done.returncode == cli.EXIT_REFUSED
    assert "no admin user exists" in done.stderr
    with pytest.raises(RuntimeError, match="refusing to listen on 0.0.0.0"):
        LocalMongoProcess(tmp_path / "p", host="0.0.0.0").start()


def test_non_loopback_bind_with_auth_and_admin_starts(tmp_path):
    data = tmp_path / "d"
    host = _non_loopback_ipv4() or "0.0.0.0"
    with LocalMongoProcess(data, host=host, auth=True, admin_user=ADMIN,
                           admin_password=ADMIN_PWD) as srv:
        client = _client(srv, ADMIN, ADMIN_PWD)
        assert client.admin.command("ping")["ok"] == 1.0
        client.close()
    # the admin is stored: a later start with --auth alone may bind the same address
    with LocalMongoProcess(data, host=host, auth=True) as srv:
        anonymous = _client(srv)
        _unauthorized(lambda: anonymous.appdb.c.find_one())
        anonymous.close()


def test_every_start_logs_the_development_banner_once(tmp_path):
    with LocalMongoProcess(tmp_path / "d") as srv:
        pass
    lines = [ln for ln in srv.log_file.read_text().splitlines() if cli.BANNER in ln]
    assert len(lines) == 1 and " WARNING " in lines[0]


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.0.2.2", False),
    ("no-such-host.invalid", False),
])
def test_bind_decision(host, loopback):
    assert cli.loopback_only(host) is loopback
    for auth, has_admin in [(False, False), (False, True), (True, False), (True, True)]:
        refusal = cli.bind_refusal(host, 27017, auth, has_admin)
        allowed = loopback or (auth and has_admin)
        assert (refusal is None) is allowed
        if refusal:
            assert refusal.startswith(f"refusing to listen on {host}:27017")
