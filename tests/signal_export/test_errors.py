"""One root for every error the project raises, and one type for every configuration error."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import research
import signal_export
from signal_export.errors import BridgeError, ConfigError


def _project_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (signal_export, research):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if (issubclass(obj, BaseException) and obj.__module__ == module.__name__):
                    found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


EXCEPTIONS = _project_exceptions()


def test_the_walk_found_the_project_s_errors():
    names = {e.__name__ for e in EXCEPTIONS}
    assert {"ContractError", "ExportError", "JobsFileError", "PipelineConfigError",
            "IngestConfigError", "MonitorConfigError", "ArtifactError"} <= names
    assert len(EXCEPTIONS) > 25


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda e: f"{e.__module__}.{e.__name__}")
def test_every_error_of_the_project_is_a_bridge_error(exc):
    assert issubclass(exc, BridgeError)


@pytest.mark.parametrize("exc", [e for e in EXCEPTIONS if "Config" in e.__name__
                                 or e.__name__ in ("JobsFileError", "SecretError")],
                         ids=lambda e: e.__name__)
def test_every_configuration_error_is_the_one_config_error_type(exc):
    assert issubclass(exc, ConfigError) and issubclass(exc, ValueError)
