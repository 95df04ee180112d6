"""Create the secret files of the compose stack (docker/secrets/, git-ignored), once.

    python3 docker/make_secrets.py            # creates what is missing, never overwrites
    python3 docker/make_secrets.py --rotate   # new passwords for every file it manages

Standard library only (runs on the Docker host without the package). Each
service of docker/compose.yaml reads its MongoDB URI and passwords from these
files through ``*_FILE`` variables (Docker secrets, mounted at
``/run/secrets/<name>``), so no secret is in an environment variable, in
compose.yaml or in ``.env``:

- ``mongo_root_password``: the ``mongo`` service's root user (MongoDB's image
  reads ``MONGO_INITDB_ROOT_PASSWORD_FILE``); ``mongo_admin_uri``: the same
  user as a URI, for ``bootstrap-users`` only;
- ``mongo_<service>_password``: each service user's password, for
  ``bootstrap-users`` (which creates the users with them); ``mongo_<service>_uri``:
  that user's URI, for the one service that uses it;
- ``freqtrade_api_password``, ``freqtrade_jwt_secret``, ``freqtrade_ws_token``:
  Freqtrade's REST API (the monitor gets the password too);
- ``ingest.tokens.yaml``: producer token hashes of the ingest API (starts
  empty; ``signal-ingest new-token --tokens docker/secrets/ingest.tokens.yaml``
  adds one).

Passwords are 48 hex characters (URI-safe). The directory is made 0700 (only
you on the host); the files are 0644 because compose mounts them into
containers that run as other users (mongo: uid 999, the bridge: uid 10001).
User names: ``MONGO_INITDB_ROOT_USERNAME`` / ``MONGO_<SERVICE>_USER`` from the
environment, else the defaults the compose file uses. After ``--rotate``,
``docker compose up -d`` re-runs ``bootstrap-users`` (new service passwords)
and restarts the services; the root password of an existing database is not
changed by the mongo image (change it in MongoDB first).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / "secrets"
MONGO_HOST = "mongo:27017"
ROOT_USER_DEFAULT = "root"
#: service key -> (user-name variable, default user name); as signal_export.security.bootstrap
SERVICE_USERS = {
    "exporter": ("MONGO_EXPORTER_USER", "signal_exporter"),
    "strategy": ("MONGO_STRATEGY_USER", "signal_strategy"),
    "monitor": ("MONGO_MONITOR_USER", "signal_monitor"),
    "ingest": ("MONGO_INGEST_USER", "signal_ingest"),
}
PLAIN_SECRETS = ("freqtrade_api_password", "freqtrade_jwt_secret", "freqtrade_ws_token")
TOKENS_FILE = "ingest.tokens.yaml"
EMPTY_TOKENS = ("# Producer token hashes of the ingest API (`signal-ingest new-token --tokens "
                "THIS_FILE` adds one).\nproducers: []\n")


def _uri(user: str, password: str) -> str:
    return f"mongodb://{user}:{password}@{MONGO_HOST}/?authSource=admin"


def _password() -> str:
    return secrets.token_hex(24)


def plan(directory: Path, environ: dict[str, str], *, rotate: bool) -> dict[str, str]:
    """``{file name: content}`` to write (existing files kept unless ``rotate``)."""

    def current(name: str) -> str | None:
        path = directory / name
        if rotate or not path.is_file():
            return None
        return path.read_text(encoding="utf-8").rstrip("\r\n") or None

    out: dict[str, str] = {}
    root_user = environ.get("MONGO_INITDB_ROOT_USERNAME") or ROOT_USER_DEFAULT
    root_pw = current("mongo_root_password") or _password()
    out["mongo_root_password"] = root_pw
    out["mongo_admin_uri"] = _uri(root_user, root_pw)
    for key, (user_var, default_user) in SERVICE_USERS.items():
        password = current(f"mongo_{key}_password") or _password()
        out[f"mongo_{key}_password"] = password
        out[f"mongo_{key}_uri"] = _uri(environ.get(user_var) or default_user, password)
    for name in PLAIN_SECRETS:
        out[name] = current(name) or _password()
    if not (directory / TOKENS_FILE).is_file():
        out[TOKENS_FILE] = EMPTY_TOKENS
    return out


def write_secrets(directory: Path, environ: dict[str, str] | None = None, *,
                  rotate: bool = False) -> list[str]:
    """Write the files of :func:`plan`; the names of those created or changed."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    changed = []
    for name, content in plan(directory, dict(os.environ if environ is None else environ),
                              rotate=rotate).items():
        text = content if content.endswith("\n") else content + "\n"
        path = directory / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
        changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    p.add_argument("--rotate", action="store_true", help="new passwords for every managed file")
    args = p.parse_args(argv)
    changed = write_secrets(args.dir, rotate=args.rotate)
    for name in changed:
        print(f"wrote {args.dir / name}")  # names only, never a value
    if not changed:
        print(f"{args.dir}: every secret file exists (nothing written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
