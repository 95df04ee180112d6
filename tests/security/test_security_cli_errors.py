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
