"""The token file: a repeated key is an error (not "last wins"), producers are added by editing the
file safely (load, add, write atomically; 0600 when created), and ``signal-ingest new-token`` /
``add-producer`` never write a token into it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from test_ingest_cli import REPO, clean_env, run_cli

from signal_export.ingest import tokens
from signal_export.ingest.strict import DuplicateMemberError, load_yaml, loads_json
from signal_export.ingest.tokens import (
    TokenConfigError,
    add_producer_to_file,
    hash_token,
    load_token_file,
    producer_entry,
)

H1, H2 = hash_token("token-one"), hash_token("token-two")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_second_producers_key_is_an_error_naming_it(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"producers:\n  - name: a\n    token_hash: {H1}\n    strategy_ids: [x]\n"
                    f"producers:\n  - name: b\n    token_hash: {H2}\n    strategy_ids: [y]\n")
    with pytest.raises(TokenConfigError, match=r"duplicate key 'producers' \(first at line 1\)"):
        load_token_file(path)


def test_a_repeated_field_in_an_entry_is_an_error(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"producers:\n  - name: a\n    token_hash: {H1}\n    token_hash: {H2}\n"
                    "    strategy_ids: [x]\n")
    with pytest.raises(TokenConfigError, match="duplicate key 'token_hash'"):
        load_token_file(path)


def test_a_repeated_member_in_a_json_token_file_is_an_error(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    entry = json.dumps({"name": "a", "token_hash": H1, "strategy_ids": ["x"]})
    path.write_text(f'{{"producers": [{entry}], "producers": []}}')
    with pytest.raises(TokenConfigError, match="duplicate member name 'producers'"):
        load_token_file(path)


def test_strict_readers_keep_what_is_legal() -> None:
    assert load_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")["d"] == {"x": 3, "y": 2}
    assert loads_json('{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}')["b"][1] == {"a": 3}
    with pytest.raises(DuplicateMemberError) as info:
        loads_json(b'[{"ok": 1}, {"x": 1, "y": 2, "x": 3}]')
    assert info.value.name == "x"


def test_adding_producers_keeps_the_file_valid_and_every_producer(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    assert mode(path) == 0o600
    add_producer_to_file(path, producer_entry("ml", H2, ["beta", "gamma"],
                                              tokens.RateLimit(2.0, 5)))
    registry = load_token_file(path)
    assert registry.authenticate("token-one").name == "desk"
    assert registry.authenticate("token-two").rate_limit == tokens.RateLimit(2.0, 5)
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.yaml"]  # no temporary file left


def test_a_name_already_there_is_refused_unless_replaced(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    before = path.read_text()
    with pytest.raises(TokenConfigError, match="'desk' is already in it"):
        add_producer_to_file(path, producer_entry("desk", H2, ["alpha"]))
    assert path.read_text() == before
    _, replaced = add_producer_to_file(path, producer_entry("desk", H2, ["alpha"]),
                                       replace=True)
    assert replaced
    registry = load_token_file(path)
    assert len(registry) == 1 and registry.authenticate("token-one") is None
    assert registry.authenticate("token-two").name == "desk"


def test_a_token_another_producer_has_is_refused(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    with pytest.raises(TokenConfigError, match="share one token"):
        add_producer_to_file(path, producer_entry("ml", H1, ["beta"]))


def test_a_broken_file_is_reported_not_repaired(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    broken = (f"producers:\n  - name: a\n    token_hash: {H1}\n    strategy_ids: [x]\n"
              "producers: []\n")
    path.write_text(broken)
    with pytest.raises(TokenConfigError, match="duplicate key 'producers'"):
        add_producer_to_file(path, producer_entry("ml", H2, ["beta"]))
    assert path.read_text() == broken


def test_an_existing_file_keeps_its_comments_header_and_its_mode(tmp_path) -> None:
    path = tmp_path / "ingest.tokens.yaml"  # as docker/make_secrets.py writes it: 0644
    path.write_text("# Producer token hashes of the ingest API.\n\nproducers: []\n")
    path.chmod(0o644)
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    assert path.read_text().startswith("# Producer token hashes of the ingest API.\n")
    assert mode(path) == 0o644  # the container user must still read it
    path.chmod(0o666)
    add_producer_to_file(path, producer_entry("ml", H2, ["beta"]))
    assert mode(path) == 0o644  # never writable by others


def test_a_json_token_file_is_edited_as_json(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    add_producer_to_file(path, producer_entry("ml", H2, ["beta"]))
    assert [p["name"] for p in json.loads(path.read_text())["producers"]] == ["desk", "ml"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "tokens.yaml"
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    before = path.read_text()

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokens.os, "replace", fail)
    with pytest.raises(OSError):
        add_producer_to_file(path, producer_entry("ml", H2, ["beta"]))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.yaml"]


def test_a_symlinked_token_file_is_edited_where_it_points(tmp_path) -> None:
    real = tmp_path / "secrets" / "tokens.yaml"
    real.parent.mkdir()
    add_producer_to_file(real, producer_entry("desk", H1, ["alpha"]))
    link = tmp_path / "tokens.yaml"
    link.symlink_to(real)
    add_producer_to_file(link, producer_entry("ml", H2, ["beta"]))
    assert link.is_symlink() and len(load_token_file(real)) == 2


# --- the commands --------------------------------------------------------------------------


def test_new_token_twice_gives_a_file_with_both_producers(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    first = run_cli("new-token", "--tokens", str(path), "--name", "desk", "--strategy-id", "a1")
    second = run_cli("new-token", "--tokens", str(path), "--name", "ml", "--strategy-id", "b1",
                     "--rate-per-second", "2", "--burst", "4")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    registry = load_token_file(path)
    assert registry.authenticate(first.stdout.strip()).name == "desk"
    assert registry.authenticate(second.stdout.strip()).rate_limit == tokens.RateLimit(2.0, 4)
    text = path.read_text()
    assert first.stdout.strip() not in text and second.stdout.strip() not in text
    assert mode(path) == 0o600
    again = run_cli("new-token", "--tokens", str(path), "--name", "desk", "--strategy-id", "a1")
    assert again.returncode == 2 and "already in it" in again.stderr and again.stdout == ""


def test_new_token_refuses_to_print_the_token_into_the_token_file(tmp_path) -> None:
    """The old habit ``signal-ingest new-token ... >> tokens.yaml`` wrote the token into it."""
    path = tmp_path / "tokens.yaml"
    add_producer_to_file(path, producer_entry("desk", H1, ["alpha"]))
    before = path.read_text()
    with path.open("a") as appended:
        out = subprocess.run([sys.executable, "-m", "signal_export.ingest", "new-token",
                              "--tokens", str(path), "--name", "ml", "--strategy-id", "b"],
                             stdout=appended, stderr=subprocess.PIPE, text=True, timeout=60,
                             cwd=REPO, env=clean_env())
    assert out.returncode == 2 and "stdout is the token file" in out.stderr
    assert path.read_text() == before


def test_new_token_uses_the_configured_token_file_or_says_it_needs_one(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    env_file = tmp_path / ".env"
    env_file.write_text(f"EXT_SIG_INGEST_TOKENS_FILE={path}\n")
    out = run_cli("new-token", "--env-file", str(env_file), "--name", "desk",
                  "--strategy-id", "a")
    assert out.returncode == 0, out.stderr
    assert load_token_file(path).authenticate(out.stdout.strip()).name == "desk"
    missing = run_cli("new-token", "--env-file", str(tmp_path / "none"), "--name", "x",
                      "--strategy-id", "a")
    assert missing.returncode == 2 and "--tokens FILE" in missing.stderr


def test_add_producer_takes_the_token_from_stdin_or_its_hash(tmp_path) -> None:
    path = tmp_path / "tokens.yaml"
    out = run_cli("add-producer", "--tokens", str(path), "--name", "desk", "--strategy-id", "a",
                  stdin="token-one\n")
    assert out.returncode == 0 and out.stdout == "", out.stderr
    out = run_cli("add-producer", "--tokens", str(path), "--name", "ml", "--strategy-id", "b",
                  "--token-hash", H2)
    assert out.returncode == 0, out.stderr
    registry = load_token_file(path)
    assert registry.authenticate("token-one").name == "desk"
    assert registry.authenticate("token-two").name == "ml"
    assert "token-one" not in path.read_text()
    bad = run_cli("add-producer", "--tokens", str(path), "--name", "x", "--strategy-id", "c",
                  "--token-hash", "plain-token")
    assert bad.returncode == 2 and "token_hash" in bad.stderr
    assert "Traceback" not in bad.stderr
    none = run_cli("add-producer", "--tokens", str(path), "--name", "y", "--strategy-id", "c")
    assert none.returncode == 2 and "no token on stdin" in none.stderr
