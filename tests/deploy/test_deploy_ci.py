"""``.github/workflows/ci.yml``: valid for actionlint, and its jobs drive the suite as intended.

The workflow cannot run here; actionlint (a pinned dev dependency) checks its
syntax, expressions and action inputs, and these tests check what actionlint
cannot know: the real-MongoDB job sets the variables the fixtures read
(``MONGO_TEST_URI`` in tests/conftest.py, ``MONGO_TEST_ADMIN_URI`` in
tests/security) with the ports and credentials of its service containers,
the replica-set job connects with ``replicaSet=rs0`` to a ``--replSet rs0``
server, every job uses Python 3.11 and the lock, and ``install-core``
installs the package without extras.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _actionlint() -> str:
    path = Path(sys.executable).with_name("actionlint")
    found = str(path) if path.exists() else shutil.which("actionlint")
    assert found, "actionlint is missing: make setup installs it (requirements.lock)"
    return found


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_actionlint_accepts_the_workflow():
    proc = subprocess.run([_actionlint(), "-no-color", str(WORKFLOW)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_really_checks(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - uses: actions/setup-python@v6\n        with:\n"
                   "          pyton-version: '3.11'\n")
    proc = subprocess.run([_actionlint(), "-no-color", str(bad)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and "pyton-version" in proc.stdout


def test_every_job_uses_python_311_and_the_locked_setup(workflow):
    for name, job in workflow["jobs"].items():
        setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
            "actions/setup-python@")]
        assert setup and setup[0]["with"]["python-version"] == "3.11", name
        if name != "install-core":
            assert "make setup" in _runs(job), name
            assert "grep -E '^torch==' requirements.lock" in _runs(job), name
    assert re.search(r"^torch==", (REPO / "requirements.lock").read_text(), re.M)


def test_the_plain_job_runs_lint_and_the_suite_on_the_dev_server(workflow):
    job = workflow["jobs"]["test"]
    assert "make lint" in _runs(job) and "make test" in _runs(job)
    assert "MONGO_TEST_URI" not in yaml.safe_dump(job)


def test_the_real_mongodb_job_points_the_fixtures_at_its_service_containers(workflow):
    job = workflow["jobs"]["real-mongodb"]
    assert "make test" in _runs(job)
    services, env = job["services"], job["env"]
    assert services["mongo"]["image"] == "mongo:7"
    assert urlsplit(env["MONGO_TEST_URI"]).netloc == "localhost:27017"
    assert "27017:27017" in services["mongo"]["ports"]
    admin = urlsplit(env["MONGO_TEST_ADMIN_URI"])
    auth = services["mongo-auth"]
    assert f"{admin.port}:27017" in auth["ports"]
    assert (admin.username, admin.password) == (auth["env"]["MONGO_INITDB_ROOT_USERNAME"],
                                                auth["env"]["MONGO_INITDB_ROOT_PASSWORD"])
    # the names the fixtures read
    assert 'os.environ.get("MONGO_TEST_URI")' in (REPO / "tests" / "conftest.py").read_text()
    fixtures = (REPO / "tests" / "security" / "auth_server_fixtures.py").read_text()
    assert 'os.environ.get("MONGO_TEST_ADMIN_URI")' in fixtures


def test_the_replica_set_job_runs_existing_tests_against_rs0(workflow):
    job = workflow["jobs"]["replica-set"]
    runs = _runs(job)
    assert "mongo:7 --replSet rs0" in runs and "rs.initiate" in runs
    (step,) = [s for s in job["steps"] if "MONGO_TEST_URI" in s.get("env", {})]
    assert "replicaSet=rs0" in step["env"]["MONGO_TEST_URI"]
    paths = [w for w in step["run"].split() if w.startswith("tests/")]
    assert paths and all((REPO / p).is_dir() for p in paths), paths


def test_install_core_installs_the_package_without_extras(workflow):
    runs = _runs(workflow["jobs"]["install-core"])
    assert re.search(r"pip install \"\$GITHUB_WORKSPACE\"\n", runs)
    assert "[" not in runs.split("pip install", 1)[1].split("\n", 1)[0]
    assert "signal-bridge install-strategy" in runs and "freqtrade list-strategies" in runs
