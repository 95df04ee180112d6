"""ExternalSignalStrategy for this repository's Freqtrade runs: the strategy the package ships.

The strategy lives in ``signal_export/strategies/ExternalSignalStrategy.py``
(installed with the package; a trader copies it into a userdir with
``signal-bridge install-strategy --userdir user_data``). Freqtrade only accepts
a class defined in a file of its strategy path, so this file defines the same
strategy by subclassing it, unchanged.
"""

from __future__ import annotations

from signal_export.logs import install_redaction_filter
from signal_export.strategies.ExternalSignalStrategy import (
    ExternalSignalStrategy as PackagedExternalSignalStrategy,
)

# Freqtrade has set up its log handlers by now: mask secrets in them (idempotent; the
# packaged module does the same when it is first imported).
install_redaction_filter()


class ExternalSignalStrategy(PackagedExternalSignalStrategy):
    """The packaged strategy (see ``signal_export/strategies/ExternalSignalStrategy.py``)."""
