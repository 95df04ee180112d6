"""``docker/Dockerfile`` checked statically: base image, pinned runtime deps, non-root, no secrets.

Not built here (no Docker engine). The final image installs the package from
its wheel (built in a first stage) and its dependencies from
requirements.runtime.lock, both with ``--no-deps``: nothing unpinned, and none
of the development tools of requirements.lock.
"""

from __future__ import annotations

import re
from pathlib import Path

from deploy_image import IGNORE_FILE, ignored, instructions, stages

REPO = Path(__file__).resolve().parents[2]


def _runs(stage) -> str:
    return " && ".join(rest for kw, rest in stage if kw == "RUN")


def test_both_stages_are_python_311_slim():
    froms = [rest for kw, rest in instructions() if kw == "FROM"]
    assert [f.split()[0] for f in froms] == ["python:3.11-slim", "python:3.11-slim"]


def test_wheel_stage_builds_the_package_with_the_locked_build_backend():
    wheel_stage = _runs(stages()[0])
    assert "pip wheel --no-deps --no-build-isolation" in wheel_stage
    assert "grep -E '^setuptools==' requirements.runtime.lock" in wheel_stage


def test_runtime_dependencies_come_from_the_runtime_lock_without_resolution():
    final = _runs(stages()[-1])
    assert "pip install --no-deps -r requirements.runtime.lock" in final
    assert "pip install --no-deps /tmp/wheels/*.whl" in final
    assert "pip check" in final
    all_runs = " && ".join(_runs(s) for s in stages())
    assert re.search(r"pip install (?!--no-deps)", all_runs) is None, "an unpinned pip install"
    assert "requirements.lock" not in re.sub(r"requirements\.runtime\.lock", "", all_runs)


def test_runs_as_a_non_root_user():
    users = [rest for kw, rest in stages()[-1] if kw == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_every_copied_file_exists_and_is_in_the_build_context():
    for kw, rest in instructions():
        if kw == "COPY" and "--from" not in rest:
            *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"COPY source {source} missing"
                assert not ignored(source), f"COPY source {source} is excluded by {IGNORE_FILE}"


def test_no_secret_in_env_or_args():
    for kw, rest in instructions():
        if kw in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|_KEY|MONGO_URI)", rest, re.I), rest


def test_build_context_ignore_file_keeps_secrets_and_local_state_out():
    for path in (".env", ".env.prod", ".venv/bin/python", ".git/config", "docker/secrets/x",
                 "secrets/x", "user_data/data/binance/a.feather", "tests/conftest.py"):
        assert ignored(path), path
    for path in ("configs/.env.example", "signal_export/settings.py", "docker/monitor.yaml"):
        assert not ignored(path), path
