"""Read variables and secrets from the environment, a ``.env`` file or a mounted secret file.

Convention (the one Docker secrets and the official ``mongo`` image use):
``NAME`` holds the value, or ``NAME_FILE`` holds the path of a file whose
content (trailing newline stripped) is the value. Setting both is an error,
so nobody wonders which one won. :func:`env_value` is the one place that
applies it; every entry point reads its variables through it (settings of the
exporter, scheduler, ingest API and research CLI via
:func:`signal_export.settings.read_env`, the strategy's ``EXT_SIG_*``
variables, the monitor's bot password and alert secrets, the bootstrap
command, the container health check, and Freqtrade's own ``FREQTRADE__*``
variables via ``signal-bridge freqtrade``). Secret-named values and URI
passwords read here are registered with :mod:`signal_export.logs`, so they are
masked in every log line. Error messages name the variable, never the value.

Not for: what the settings mean (``signal_export.settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from signal_export.errors import ConfigError
from signal_export.logs import register_env_secrets, register_secret


class SecretError(ConfigError):
    """A required secret is missing or unreadable; the message names the variable only.

    Also a ``ValueError``: every entry point reports bad configuration values that way.
    """


def env_value(name: str, *, environ: Mapping[str, str] | None = None,
              env_file_values: Mapping[str, str | None] | None = None) -> str | None:
    """The value of ``name`` from ``NAME`` or ``NAME_FILE``: process env first, then ``.env``.

    ``environ`` defaults to ``os.environ``; ``env_file_values`` are a ``.env`` file's
    values ({} or None: no file). Empty values count as unset (None). Raises
    :class:`SecretError` when both forms are set in the same source, or when the
    file cannot be read or is empty. Secret-named values (``*_PASSWORD``,
    ``*_TOKEN``, ...) and URI passwords are registered for log masking.
    """
    sources: list[Mapping[str, str | None]] = [os.environ if environ is None else environ]
    if env_file_values:
        sources.append(env_file_values)
    for source in sources:
        value = source.get(name) or None
        path = source.get(f"{name}_FILE") or None
        if value and path:
            raise SecretError(f"{name} and {name}_FILE are both set; set only one")
        if path:
            value = _read_secret_file(name, Path(path))
        if value and str(value).strip():
            register_env_secrets({name: value})
            return value
    return None


def load_env_file(path: str | Path | None) -> dict[str, str]:
    """Values of a ``.env`` file ({} if None or missing); ``os.environ`` is left alone."""
    if path is None or not Path(path).is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def read_secret(name: str, *, environ: Mapping[str, str] | None = None,
                env_file_values: Mapping[str, str] | None = None,
                required: bool = True) -> str | None:
    """The secret ``name`` from ``NAME`` or ``NAME_FILE`` (process env first, then ``.env``).

    Returns None when not set and not ``required``; raises :class:`SecretError`
    when required and missing, when both forms are set, or when the file
    cannot be read or is empty.
    """
    value = env_value(name, environ=environ, env_file_values=env_file_values)
    if value:
        register_secret(value)
        return value
    if required:
        raise SecretError(f"secret {name} is not set: set {name} or {name}_FILE (path of a "
                          "mounted secret file)")
    return None


def _read_secret_file(name: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None
    value = text.rstrip("\r\n")
    if not value:
        raise SecretError(f"{name}_FILE: {path} is empty")
    return value
