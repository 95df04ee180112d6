"""Authentication and role enforcement of the local MongoDB dev server.

Runs its own server process with ``--auth`` and a bootstrap admin, so it is
skipped when ``MONGO_TEST_URI`` points the suite at a real MongoDB (whose users
we do not control). Checks mongod's codes: 18 for a bad password, 13 for an
operation the user's roles do not allow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pymongo
import pytest
from auth_server import auth_server_at, client_for
from pymongo.errors import OperationFailure

from devservers.mongo.process import LocalMongoProcess

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGO_TEST_URI")), reason="needs its own local server process"
)

ADMIN, ADMIN_PWD = "root-admin", "s3cret-Admin-pw"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[LocalMongoProcess]:
    with auth_server_at(tmp_path_factory.mktemp("mongo-auth"), ADMIN, ADMIN_PWD) as srv:
        yield srv


_client = client_for


@pytest.fixture(scope="module")
def admin(auth_server) -> Iterator[pymongo.MongoClient]:
    client = _client(auth_server, ADMIN, ADMIN_PWD)
    for user, roles in [("reader", ["read"]), ("writer", ["readWrite"]),
                        ("dbadm", ["dbAdmin"]), ("useradm", ["userAdmin"])]:
        client.appdb.command("createUser", user, pwd=f"{user}-pw", roles=roles)
    client.appdb.seed.insert_one({"_id": 1, "v": "seed"})
    yield client
    client.close()


def _as(auth_server, user: str) -> pymongo.MongoClient:
    return _client(auth_server, user, f"{user}-pw", "appdb")


def _assert_unauthorized(call) -> OperationFailure:
    with pytest.raises(OperationFailure) as err:
        call()
    assert err.value.code == 13
    assert err.value.details["codeName"] == "Unauthorized"
    return err.value


def test_admin_authenticates_with_scram_sha_256(auth_server, admin):
    status = admin.admin.command("connectionStatus")
    assert status["authInfo"]["authenticatedUsers"] == [{"user": ADMIN, "db": "admin"}]


def test_default_mechanism_negotiation_picks_scram_sha_256(auth_server, admin):
    uri = f"mongodb://reader:reader-pw@{auth_server.host}:{auth_server.port}/?authSource=appdb"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    assert client.appdb.seed.find_one()["v"] == "seed"
    client.close()


def test_unauthenticated_clients_are_refused(auth_server, admin):
    client = _client(auth_server)
    assert client.admin.command("ping")["ok"] == 1.0  # ping needs no auth, as on mongod
    _assert_unauthorized(lambda: client.appdb.seed.find_one())
    _assert_unauthorized(lambda: client.appdb.seed.insert_one({"x": 1}))
    _assert_unauthorized(lambda: client.list_database_names())


def test_bad_password_fails_with_code_18(auth_server, admin):
    client = _client(auth_server, "reader", "wrong", "appdb")
    with pytest.raises(OperationFailure) as err:
        client.appdb.seed.find_one()
    assert err.value.code == 18
    unknown = _client(auth_server, "nobody", "x", "appdb")
    with pytest.raises(OperationFailure) as err:
        unknown.appdb.seed.find_one()
    assert err.value.code == 18


def test_read_role_reads_but_cannot_write(auth_server, admin):
    client = _as(auth_server, "reader")
    assert client.appdb.seed.find_one() == {"_id": 1, "v": "seed"}
    err = _assert_unauthorized(lambda: client.appdb.seed.insert_one({"x": 1}))
    assert "not authorized on appdb to execute command" in str(err)
    _assert_unauthorized(lambda: client.appdb.seed.create_index("v"))
    _assert_unauthorized(lambda: client.otherdb.c.find_one())


def test_read_write_role_writes_but_cannot_drop_the_database(auth_server, admin):
    client = _as(auth_server, "writer")
    client.appdb.w.insert_one({"_id": "w"})
    assert client.appdb.w.update_one({"_id": "w"}, {"$set": {"n": 1}}).modified_count == 1
    client.appdb.w.create_index("n")
    _assert_unauthorized(lambda: client.drop_database("appdb"))
    _assert_unauthorized(lambda: client.appdb.command("createUser", "x", pwd="y", roles=[]))
    _assert_unauthorized(lambda: client.otherdb.c.insert_one({"x": 1}))
    assert client.list_database_names() == ["appdb"]


def test_db_admin_manages_indexes_but_cannot_read_documents(auth_server, admin):
    client = _as(auth_server, "dbadm")
    client.appdb.seed.create_index("v", name="v_by_dbadmin")
    assert "v_by_dbadmin" in [ix["name"] for ix in client.appdb.seed.list_indexes()]
    _assert_unauthorized(lambda: client.appdb.seed.find_one())
    _assert_unauthorized(lambda: client.appdb.seed.insert_one({"x": 1}))


def test_user_admin_manages_users_only(auth_server, admin):
    client = _as(auth_server, "useradm")
    client.appdb.command("createUser", "temp", pwd="temp-pw", roles=["read"])
    info = client.appdb.command("usersInfo", "temp")["users"][0]
    assert info["roles"] == [{"role": "read", "db": "appdb"}]
    assert "credentials" not in info
    _assert_unauthorized(lambda: client.appdb.seed.find_one())
    assert _as(auth_server, "temp").appdb.seed.find_one()["v"] == "seed"
    client.appdb.command("updateUser", "temp", pwd="temp-pw2", roles=["readWrite"])
    with pytest.raises(OperationFailure) as err:
        _as(auth_server, "temp").appdb.seed.find_one()
    assert err.value.code == 18
    renewed = _client(auth_server, "temp", "temp-pw2", "appdb")
    renewed.appdb.seed2.insert_one({"x": 1})
    client.appdb.command("dropUser", "temp")
    with pytest.raises(OperationFailure) as err:
        _client(auth_server, "temp", "temp-pw2", "appdb").appdb.seed.find_one()
    assert err.value.code == 18


def test_create_user_rejects_unknown_roles_and_duplicates(auth_server, admin):
    with pytest.raises(OperationFailure) as err:
        admin.appdb.command("createUser", "bad", pwd="x", roles=["noSuchRole"])
    assert err.value.code == 31
    with pytest.raises(OperationFailure) as err:
        admin.appdb.command("createUser", "reader", pwd="x", roles=["read"])
    assert err.value.code == 51003


def test_passwords_never_reach_the_log(auth_server, admin):
    admin.admin.command("ping")
    log_text = auth_server.log_file.read_text()
    assert "listening" in log_text
    assert ADMIN_PWD not in log_text
    assert "reader-pw" not in log_text
