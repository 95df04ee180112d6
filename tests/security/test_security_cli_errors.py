"""CLIs name MongoDB's refusals: a wrong password or a missing privilege is one clear line."""

from __future__ import annotations

import os

from signal_export.cli import main

CSV = "ts,timeframe,pair,action\n2026-03-02T00:00:00Z,1h,BTC/USDT,enter_long\n"


def test_wrong_password_and_missing_privilege_are_named_not_blamed_on_indexes(
        auth_server, admin_client, tmp_path, capsys):
    """Code 18 -> 'rejected the credentials'; code 13 -> 'may not create indexes'."""
    path = tmp_path / "signals.csv"
    path.write_text(CSV)
    db = f"cli_{os.getpid()}"
    admin_client[db].command("createUser", "reader", pwd="Reader-pw-77",
                             roles=[{"role": "read", "db": db}])
    try:
        wrong = auth_server.uri("reader", "not-the-password", auth_db=db)
        assert main(["export", str(path), "--strategy-id", "s", "--mongo-uri", wrong,
                     "--db", db, "--env-file", "/nonexistent"]) == 3
        err = capsys.readouterr().err
        assert "rejected the credentials" in err and "not-the-password" not in err
        reader = auth_server.uri("reader", "Reader-pw-77", auth_db=db)
        assert main(["export", str(path), "--strategy-id", "s", "--mongo-uri", reader,
                     "--db", db, "--env-file", "/nonexistent"]) == 3
        err = capsys.readouterr().err
        assert "may not create indexes" in err and "code 13" in err
    finally:
        admin_client[db].command("dropUser", "reader")


def test_signal_replay_with_mongodb_down_is_one_line_exit_3(capsys, monkeypatch):
    from research.pipeline.replay import main as replay

    monkeypatch.setenv("EXT_SIG_MONGO_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    assert replay(["some-run", "--env-file", "/nonexistent"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("signal-replay: MongoDB unavailable") and len(err.splitlines()) == 1


def test_secret_scan_help_does_not_scan_and_outside_git_is_exit_2(tmp_path, capsys):
    import pytest

    from signal_export.security.secret_scan import main as scan

    with pytest.raises(SystemExit) as info:
        scan(["--help"])
    assert info.value.code == 0 and "Exit status" in capsys.readouterr().out
    assert scan([str(tmp_path)]) == 2
    assert "is not a git work tree" in capsys.readouterr().err
