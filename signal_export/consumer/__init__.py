"""The consumer side of the bridge: what ``ExternalSignalStrategy`` runs inside Freqtrade.

``normalise`` turns raw ``crypto_signals`` documents (whoever wrote them) into a
typed frame, ``matching`` maps that frame onto a Freqtrade candle frame (pure,
vectorised), ``config`` validates the ``ext_signals`` settings, ``source`` is the
MongoDB read path (one query per bot loop, outage-safe) and ``logic`` glues them
together for the thin strategy file. Nothing here places orders or patches
Freqtrade.
"""

from signal_export.consumer.config import ExtSignalsConfig, load_config
from signal_export.consumer.matching import MatchRules, match_signals
from signal_export.consumer.normalise import normalise_signals

__all__ = ["ExtSignalsConfig", "MatchRules", "load_config", "match_signals", "normalise_signals"]
