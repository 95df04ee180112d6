"""Find secret-looking values in the files a commit would carry (CI check, pre-commit).

Scans ``git ls-files --cached --others --exclude-standard`` (tracked files and
new files that are not git-ignored) for: PEM private keys, URIs with a
password that is not a documented placeholder, well-known token shapes
(AWS, GitHub, Slack, Discord/Slack webhooks, Telegram bot tokens, JWTs),
high-entropy values assigned to secret-named keys (``password = "..."``,
``"secret": "..."``, ``API_KEY=...``), and any tracked ``.env`` file.

A deliberate fake (a test password) is allowed by ``pragma: allowlist secret``
on its line, the same marker ``detect-secrets`` uses. Findings name file,
line and rule and show the value masked. Not for: scanning git history
(use ``detect-secrets``/``gitleaks`` for that) or runtime redaction
(``signal_export.logs``).
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ALLOW_MARKER = "pragma: allowlist secret"
MAX_FILE_BYTES = 2_000_000
#: Values that document where a secret goes rather than being one.
PLACEHOLDER_RE = re.compile(
    r"^(?:\$\{?[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}?|<[^>]+>|\*+|x{3,}|\.{3}|%s|%\([a-z_]+\)s"
    r"|\{[a-z_]*\}|.*change[_-]?me.*|.*example.*|.*placeholder.*|.*your[_-].*|password|secret"
    r"|pw|pwd|pass|user|none|null|true|false|redacted|dummy|test|\s*)$",
    re.IGNORECASE,
)
_SECRET_KEY = (r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|passwd|secret|api[_-]?key|apikey|access[_-]?key"
               r"|private[_-]?key|auth[_-]?token|access[_-]?token|bot[_-]?token|jwt[_-]?secret"
               r"[_-]?key|ws[_-]?token|webhook[_-]?url)")

RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}")),
    ("Slack webhook", re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/"
                                 r"(?P<value>[A-Za-z0-9]{16,})")),
    ("Discord webhook", re.compile(r"discord(?:app)?\.com/api/webhooks/\d+/"
                                   r"(?P<value>[\w-]{30,})")),
    ("Telegram bot token", re.compile(r"\b\d{8,10}:AA[A-Za-z0-9_-]{30,40}\b")),
    ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("URI with password", re.compile(
        r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(?P<value>[^\s@/'\"]+)@[^\s'\"]", re.IGNORECASE)),
    ("secret assignment", re.compile(
        rf"(?P<key>[\"']?\b{_SECRET_KEY}[\"']?)\s*(?::|=|:=)\s*"
        r"(?:(?P<q>[\"'])(?P<value>[^\"'\n]{8,})(?P=q)|(?P<bare>[^\s\"',;#)\]}]{8,}))",
        re.IGNORECASE)),
)
#: Rules that need a literal, non-placeholder value (and, in tests, a random-looking one).
_VALUE_RULES = ("URI with password", "secret assignment")
#: Test files may hold obvious fakes ("s3cret"); only random-looking values count there.
TEST_DIRS = ("tests/",)
TEST_MIN_ENTROPY = 3.5
TEST_MIN_LENGTH = 16


@dataclass(frozen=True)
class Finding:
    """One secret-looking value: where, which rule, the value masked."""

    path: str
    line: int
    rule: str
    masked: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.masked}"


def shannon_entropy(text: str) -> float:
    """Bits per character; random keys score > 3.5, words and placeholders lower."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _mask(value: str) -> str:
    return value[:2] + "…" + f"({len(value)} chars)" if len(value) > 4 else "…"


def _is_placeholder(value: str) -> bool:
    return bool(PLACEHOLDER_RE.match(value)) or "${" in value or "{{" in value


_CODE_RE = re.compile(r"(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*)"
                      r"(?:[(\[].*)?")


def _is_literal_secret(path: str, rule: str, value: str, bare: bool) -> bool:
    if _is_placeholder(value) or value.startswith("{") or "%(" in value:
        return False  # a placeholder, an f-string field or a %-format field
    if bare and _CODE_RE.fullmatch(value):
        return False  # a variable, attribute or call, not a literal
    entropy = shannon_entropy(value)
    if path.startswith(TEST_DIRS):
        return entropy >= TEST_MIN_ENTROPY and len(value) >= TEST_MIN_LENGTH
    return rule == "URI with password" or entropy >= 3.0


def scan_text(path: str, text: str) -> list[Finding]:
    """Findings in one file's text."""
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), 1):
        if ALLOW_MARKER in line:
            continue
        for rule, pattern in RULES:
            for match in pattern.finditer(line):
                groups = match.groupdict()
                value = groups.get("value") or groups.get("bare") or match.group(0)
                if rule in _VALUE_RULES and not _is_literal_secret(path, rule, value,
                                                                   bool(groups.get("bare"))):
                    continue
                found.append(Finding(path, number, rule, _mask(value)))
    return found


def is_env_file(path: str) -> bool:
    """``.env``, ``prod.env``, ``.env.local``... but not ``.env.example``/``.env.template``."""
    name = Path(path).name
    if name.endswith((".example", ".template", ".sample", ".dist")):
        return False
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def candidate_files(repo: Path) -> list[str]:
    """Files a commit would carry: tracked plus untracked-but-not-ignored."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=repo, capture_output=True, check=True).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def scan_files(repo: Path, paths: Iterable[str]) -> list[Finding]:
    """Findings in ``paths`` (relative to ``repo``); binary and huge files are skipped."""
    found: list[Finding] = []
    for rel in paths:
        if is_env_file(rel):
            found.append(Finding(rel, 0, "env file in the repository", "(whole file)"))
            continue
        full = repo / rel
        if not full.is_file() or full.stat().st_size > MAX_FILE_BYTES:
            continue
        data = full.read_bytes()
        if b"\0" in data[:8192]:
            continue
        found.extend(scan_text(rel, data.decode("utf-8", errors="replace")))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Scan a git repository; exit 0 clean, 1 something found, 2 not a git repository."""
    parser = argparse.ArgumentParser(
        prog="signal-secret-scan", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 nothing found, 1 secret-looking values found (listed), "
               "2 REPO is not a git work tree.")
    parser.add_argument("repo", nargs="?", default=".", help="git work tree (default: .)")
    args = parser.parse_args(argv)
    repo = Path(args.repo).resolve()
    try:
        files = candidate_files(repo)
    except (subprocess.CalledProcessError, OSError):
        print(f"signal-secret-scan: {repo} is not a git work tree (it scans the files a "
              "commit would carry)", file=sys.stderr)
        return 2
    findings = scan_files(repo, files)
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} secret-looking value(s). Remove them, or mark a deliberate fake "
              f"with '{ALLOW_MARKER}' on its line.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
