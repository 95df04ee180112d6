"""The project's exception roots: catch :class:`BridgeError` for anything the bridge raises
on purpose, :class:`ConfigError` for any bad configuration (file, flag or variable).

Every specific error (a bad signal contract, an export that could not finish,
an unreadable monitor config, …) derives from one of these, so a CLI turns all
of them into a one-line message and an exit code in one place.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises deliberately."""


class ConfigError(BridgeError, ValueError):
    """A configuration (file, CLI flag, environment variable) is unusable; the message says why."""
