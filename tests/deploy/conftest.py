"""Fixtures of the deployment tests: the auth-enabled server of tests/security."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))

from auth_server_fixtures import admin_client, auth_server, db_names  # noqa: E402, F401
