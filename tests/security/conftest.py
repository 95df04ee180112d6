"""Fixtures of the security tests (see auth_server_fixtures.py)."""

import logging

import pytest
from auth_server_fixtures import admin_client, auth_server, db_names  # noqa: F401


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """CLIs under test call configure_logging(), which replaces the root handlers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
