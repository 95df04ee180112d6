"""``signal-bootstrap-users`` end to end, and secrets from env / ``*_FILE``.

The command reads every secret from the environment or mounted files, prints
what it did without any password, and can be re-run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid

import pytest
from pymongo.errors import OperationFailure

from signal_export.security.bootstrap import (
    SERVICE_USERS,
    WRITEBACK_ROLE,
    BootstrapConfig,
    BootstrapError,
    bootstrap,
)
from signal_export.security.cli import main
from signal_export.security.secrets import SecretError, read_secret


@pytest.fixture
def service_env(monkeypatch, tmp_path, auth_server, db_names):
    """Env for the CLI: admin URI in a secret file, passwords in env vars, unique user names."""
    tag = uuid.uuid4().hex[:6]
    admin_file = tmp_path / "mongo_admin_uri"
    admin_file.write_text(auth_server.admin_uri + "\n")
    monkeypatch.setenv("MONGO_ADMIN_URI_FILE", str(admin_file))
    monkeypatch.delenv("MONGO_ADMIN_URI", raising=False)
    monkeypatch.setenv("EXT_SIG_DB", db_names[0])
    monkeypatch.setenv("MARKET_DB", db_names[1])
    passwords = {}
    for user in SERVICE_USERS:
        monkeypatch.setenv(user.name_env, f"{user.key}_{tag}")
        passwords[user.key] = f"{user.key}-Secret-{uuid.uuid4().hex}"
        monkeypatch.setenv(user.password_env, passwords[user.key])
        monkeypatch.delenv(user.password_env + "_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    return {"tag": tag, "passwords": passwords}


def _cleanup(admin_client, tag, db_names):
    for user in SERVICE_USERS:
        with contextlib.suppress(OperationFailure):
            admin_client.admin.command("dropUser", f"{user.key}_{tag}")
    for name in db_names:
        admin_client.drop_database(name)


def test_cli_creates_users_then_rerun_updates_them_and_never_prints_passwords(
        service_env, capsys, caplog, auth_server, admin_client, db_names):
    tag, passwords = service_env["tag"], service_env["passwords"]
    caplog.set_level(logging.DEBUG)
    try:
        assert main(["--env-file", "missing.env"]) == 0
        first = capsys.readouterr()
        assert first.out.count("created user") == len(SERVICE_USERS)
        assert main(["--env-file", "missing.env"]) == 0
        second = capsys.readouterr()
        assert second.out.count("updated user") == len(SERVICE_USERS)
        everything = first.out + first.err + second.out + second.err + caplog.text
        for secret in [*passwords.values(), "Adm1n-pw-for-tests-only-9f2c"]:
            assert secret not in everything
        client = auth_server.client(auth_server.uri(f"strategy_{tag}", passwords["strategy"]))
        try:
            client[db_names[0]].crypto_signals.find_one()
            with pytest.raises(OperationFailure) as err:
                client[db_names[0]].crypto_signals.insert_one({"x": 1})
            assert err.value.code == 13
        finally:
            client.close()
    finally:
        _cleanup(admin_client, tag, db_names)


def test_cli_refuses_an_admin_uri_with_password_on_the_command_line(service_env, capsys):
    code = main(["--env-file", "missing.env", "--admin-uri", "mongodb://root:Pw-123456@h:1/"])
    err = capsys.readouterr().err
    assert code == 2
    assert "must not carry credentials" in err and "Pw-123456" not in err


def test_cli_reports_a_missing_password_by_variable_name(service_env, monkeypatch, capsys):
    monkeypatch.delenv("MONGO_MONITOR_PASSWORD")
    assert main(["--env-file", "missing.env"]) == 2
    assert "MONGO_MONITOR_PASSWORD" in capsys.readouterr().err


def test_cli_malformed_admin_uri_is_one_line_exit_2(service_env, monkeypatch, tmp_path,
                                                    capsys):
    bad = tmp_path / "bad_admin_uri"
    bad.write_text("mongodb://root-admin:Adm1n-Secret-77@127.0.0.1:notaport/")
    monkeypatch.setenv("MONGO_ADMIN_URI_FILE", str(bad))
    assert main(["--env-file", "missing.env"]) == 2
    err = capsys.readouterr().err
    assert "invalid MongoDB URI" in err and "Adm1n-Secret-77" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_wrong_admin_password_is_a_clear_error_without_the_password(
        service_env, monkeypatch, tmp_path, auth_server, capsys):
    wrong = "Wr0ng-admin-" + uuid.uuid4().hex
    bad = tmp_path / "bad_admin_uri"
    bad.write_text(auth_server.uri("root-admin", wrong))
    monkeypatch.setenv("MONGO_ADMIN_URI_FILE", str(bad))
    assert main(["--env-file", "missing.env"]) == 1
    err = capsys.readouterr().err
    assert "authentication failed" in err and "root-admin" in err
    assert wrong not in err


def test_cli_plan_prints_roles_without_touching_the_server(service_env, capsys, db_names):
    assert main(["--env-file", "missing.env", "--plan"]) == 0
    out = capsys.readouterr().out
    assert f'"db": "{db_names[0]}"' in out and "readWrite" in out
    for password in service_env["passwords"].values():
        assert password not in out


def test_writeback_role_is_created_or_the_missing_feature_is_named(admin_client, db_names):
    tag = uuid.uuid4().hex[:6]
    config = BootstrapConfig(signals_db=db_names[0], market_db=db_names[1],
                             users={"strategy": f"strategy_{tag}"},
                             passwords={"strategy": "strategy-Pw-" + tag * 3},
                             writeback_collections=("ft_trades",))
    try:
        if os.environ.get("MONGO_TEST_ADMIN_URI"):  # real MongoDB: custom roles exist
            bootstrap(admin_client, config)
            info = admin_client[db_names[0]].command("rolesInfo", WRITEBACK_ROLE,
                                                     showPrivileges=True)
            resources = {p["resource"]["collection"] for p in info["roles"][0]["privileges"]}
            assert resources == {"ft_trades"}
        else:  # the local dev server has no role management: a clear error, nothing half-done
            with pytest.raises(BootstrapError, match="custom role .*CommandNotFound"):
                bootstrap(admin_client, config)
            info = admin_client.admin.command("usersInfo", {"user": f"strategy_{tag}",
                                                            "db": "admin"})
            assert info["users"] == []
            assert db_names[0] not in admin_client.list_database_names()
    finally:
        _cleanup(admin_client, tag, db_names)


def test_secret_from_file_wins_only_when_alone(tmp_path):
    path = tmp_path / "pw"
    path.write_text("file-Secret-123\n")
    assert read_secret("X_PASSWORD", environ={"X_PASSWORD_FILE": str(path)}) == "file-Secret-123"
    assert read_secret("X_PASSWORD", environ={"X_PASSWORD": "env-Secret-123"}) == "env-Secret-123"
    with pytest.raises(SecretError, match="both set"):
        read_secret("X_PASSWORD", environ={"X_PASSWORD": "a" * 12, "X_PASSWORD_FILE": str(path)})


def test_secret_errors_name_the_variable_and_never_the_value(tmp_path):
    with pytest.raises(SecretError, match="X_TOKEN or X_TOKEN_FILE"):
        read_secret("X_TOKEN", environ={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretError, match="X_TOKEN_FILE: .* is empty"):
        read_secret("X_TOKEN", environ={"X_TOKEN_FILE": str(empty)})
    with pytest.raises(SecretError, match="cannot read"):
        read_secret("X_TOKEN", environ={"X_TOKEN_FILE": str(tmp_path / "nope")})
    assert read_secret("X_TOKEN", environ={}, required=False) is None
    assert read_secret("X_TOKEN", environ={}, env_file_values={"X_TOKEN": "dotenv-Tok-1"}) \
        == "dotenv-Tok-1"


def test_uri_descriptions_name_user_and_source_but_never_the_password():
    from signal_export.security.login import describe_uri

    assert describe_uri("mongodb://u:pw-123456@h:1/?authSource=signals") == \
        "user 'u' (authSource 'signals') at h:1"
    assert describe_uri("mongodb://h:1/") == "no user (unauthenticated) at h:1"
    assert "pw-123456" not in describe_uri("mongodb://u:pw-123456@")
