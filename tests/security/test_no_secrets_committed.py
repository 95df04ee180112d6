"""CI gate: no secret-looking value in the files a commit would carry.

The first test scans the real repository (tracked + untracked-not-ignored
files). The others show that the scanner catches each kind of leak and lets
documented placeholders through, so a green first test means something.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from signal_export.security.secret_scan import (
    candidate_files,
    is_env_file,
    scan_files,
    scan_text,
    shannon_entropy,
)

REPO = Path(__file__).resolve().parents[2]


def test_repository_has_no_committed_secrets():
    files = candidate_files(REPO)
    assert "pyproject.toml" in files  # the scan really saw the repository
    findings = scan_files(REPO, files)
    assert not findings, "secret-looking values:\n" + "\n".join(map(str, findings))


def test_dot_env_is_git_ignored_and_only_the_example_is_tracked():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode
    assert ignored == 0, ".env must be listed in .gitignore"
    assert not [p for p in candidate_files(REPO) if is_env_file(p)]
    assert (REPO / "configs/.env.example").is_file()


# Built at run time so this file itself holds no secret-shaped literal.
_KEY = "".join(["vmPUZE6mv9SD5VNH", "k4HlWFsOrAk7Lm2Q"])
_PEM = "-----BEGIN " + "RSA PRIVATE KEY-----"


@pytest.mark.parametrize(("line", "rule"), [
    (_PEM, "private key"),
    (f"EXT_SIG_MONGO_URI=mongodb://exporter:{'hunter2' + 'x9'}@db:27017/", "URI with password"),
    (f'"secret": "{_KEY}",', "secret assignment"),
    (f"BINANCE_API_KEY={_KEY}", "secret assignment"),
    (f"password = '{_KEY[:14]}'", "secret assignment"),
    ("AKIA" + "IOSFODNN7EXAMPLQ", "AWS access key id"),
    ("https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/" + _KEY[:24], "Slack webhook"),
    ("1234567890:AA" + _KEY + "zz9", "Telegram bot token"),
])
def test_scanner_flags_each_kind_of_secret(line, rule):
    findings = scan_text("configs/app.cfg", line)
    assert [f.rule for f in findings] == [rule]
    assert _KEY not in str(findings[0])  # the report masks the value


@pytest.mark.parametrize("line", [
    "EXT_SIG_MONGO_URI=mongodb://127.0.0.1:27017",
    "MONGO_URI=mongodb://exporter:CHANGE_ME@db:27017/?authSource=admin",
    "uri: mongodb://${MONGO_EXPORTER_USER}:${MONGO_EXPORTER_PASSWORD}@mongo:27017/",
    'f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{host}"',
    '"key": "",',
    "password = read_secret('MONGO_EXPORTER_PASSWORD')",
    "api_key=settings.api_key",
    'api_key = os.environ["BINANCE_KEY"]',
    'secret = config["exchange"]["secret"]',
    "token = secrets.token_urlsafe(32)",
    "password: <your-password>",
    f"password = '{_KEY}'  # pragma: allowlist secret",
])
def test_scanner_lets_placeholders_and_code_through(line):
    assert scan_text("configs/app.cfg", line) == []


def test_obvious_fakes_in_tests_pass_but_random_looking_ones_do_not():
    assert scan_text("tests/x/test_a.py", 'uri = "mongodb://u:s3cret@h:1/"') == []
    assert len(scan_text("tests/x/test_a.py", f'api_key = "{_KEY}"')) == 1


def test_a_tracked_env_file_is_a_finding(tmp_path):
    (tmp_path / ".env").write_text("EXT_SIG_DB=signals\n")
    assert [f.rule for f in scan_files(tmp_path, [".env"])] == ["env file in the repository"]
    assert not is_env_file("configs/.env.example")


def test_entropy_separates_keys_from_words():
    assert shannon_entropy(_KEY) > 4.0 > shannon_entropy("passwordpassword")
