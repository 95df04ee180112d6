"""``docker/Dockerfile`` checked statically: base image, pinned deps, non-root, no secrets.

Not built here (no Docker engine); every file it copies must exist and the
dependency install must use the pinned lock without resolving anything new.
"""

from __future__ import annotations

import re
from pathlib import Path

from signal_export.scheduler.jobs import load_jobs

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_base_image_is_python_311_slim():
    froms = [rest for kw, rest in _instructions() if kw == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"


def test_dependencies_come_from_the_lock_without_resolution():
    runs = " ".join(rest for kw, rest in _instructions() if kw == "RUN")
    assert "pip install --no-deps -r requirements.lock" in runs
    assert "pip install --no-deps -e ." in runs
    assert re.search(r"pip install (?!--no-deps)", runs) is None, "an unpinned pip install"


def test_runs_as_a_non_root_user():
    users = [rest for kw, rest in _instructions() if kw == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_every_copied_file_exists():
    for kw, rest in _instructions():
        if kw == "COPY":
            *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"COPY source {source} missing"


def test_no_secret_in_env_or_args():
    for kw, rest in _instructions():
        if kw in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|_KEY|MONGO_URI)", rest, re.I), rest


def test_build_context_ignore_file_keeps_env_files_out():
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert ".env" in ignore and ".venv" in ignore and ".git" in ignore


def test_scheduler_jobs_file_of_the_stack_is_valid():
    jobs = load_jobs(REPO / "docker" / "scheduler.jobs.yaml")
    assert jobs.jobs and all(Path(j.pipeline).is_file() for j in jobs.jobs)
