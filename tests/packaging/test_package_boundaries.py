"""The product package does not depend on research code or the dev servers by import.

``signal_export`` is what a trader installs; ``research`` needs the
``research`` extra and ``devservers`` is not installed at all. So no module of
``signal_export`` imports ``devservers``, and only the ``signal-replay`` CLI
(which re-runs research pipelines) imports ``research``. The scheduler runs
the research pipeline through the job module its jobs file names (default
:mod:`research.pipeline.scheduled`), imported by dotted path when it starts,
with an error that names the extra when it cannot be imported.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from signal_export.scheduler.jobs import JobsFileError, load_job_module, parse_jobs

REPO = Path(__file__).resolve().parents[2]
#: signal_export modules allowed to import research: none (research imports signal_export;
#: CLIs that re-run research pipelines, like signal-replay, live in research/).
IMPORTS_RESEARCH: set[str] = set()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_signal_export_imports_neither_the_dev_servers_nor_research():
    offenders = {}
    for path in sorted((REPO / "signal_export").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        bad = _imports(path) & {"devservers", "tests", "scripts", "bench"}
        if rel not in IMPORTS_RESEARCH:
            bad |= _imports(path) & {"research"}
        if bad:
            offenders[rel] = sorted(bad)
    assert not offenders, offenders


def test_the_scheduler_cli_does_not_import_research_until_it_runs_a_job():
    code = ("import sys, json; import signal_export.scheduler.cli, signal_export.scheduler.window;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'research')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_moved_names_still_resolve_to_the_research_job_module():
    from research.pipeline import scheduled
    from signal_export.scheduler.window import WindowedJob, read_minute_bars

    assert WindowedJob is scheduled.WindowedJob and read_minute_bars is scheduled.read_minute_bars
    with pytest.raises(AttributeError):
        from signal_export.scheduler import window

        _ = window.NoSuchName


def test_a_job_module_that_cannot_be_imported_is_a_clear_error():
    with pytest.raises(JobsFileError, match=r"research extra: pip install "
                                            r"'freqtrade-signal-bridge\[research\]'"):
        load_job_module("research.no_such_job_module")
    with pytest.raises(JobsFileError, match="does not define"):
        load_job_module("json")
    with pytest.raises(JobsFileError, match="dotted module path"):
        parse_jobs({"job_module": "not a module", "jobs": [{"name": "a", "pipeline": "p.yaml"}]})
    assert parse_jobs({"jobs": [{"name": "a", "pipeline": "p.yaml"}]}).job_module == (
        "research.pipeline.scheduled")
