"""The Freqtrade strategy shipped with the package, as a file Freqtrade can load.

Freqtrade loads strategies from files in a directory (``--strategy-path`` or
``<userdir>/strategies``), not from installed packages: ``STRATEGY_FILE`` is
that file, and ``signal-bridge install-strategy --userdir DIR`` copies it into
a userdir (``signal_export.bridge``). Importing this package does not import
Freqtrade.
"""

from __future__ import annotations

from pathlib import Path

STRATEGY_NAME = "ExternalSignalStrategy"
#: The strategy file inside the installed package (also a valid ``--strategy-path`` entry).
STRATEGY_FILE = Path(__file__).with_name(f"{STRATEGY_NAME}.py")

__all__ = ["STRATEGY_FILE", "STRATEGY_NAME"]
