"""Factor library: registry, TA-Lib/statistical/crypto templates, incremental newest-bar path.

Use :func:`compute_factors` for history and :func:`latest_factors` for the newest
bar of many symbols (the scheduled 1m job).
"""

from research.factors.incremental import history_length, latest_factors
from research.factors.registry import (
    FactorError,
    FactorSpec,
    MissingDataError,
    available_factors,
    compute_factors,
    get_factor,
    list_factors,
    register_factor,
    resolve_spec,
)

__all__ = [
    "FactorError", "FactorSpec", "MissingDataError", "available_factors", "compute_factors",
    "get_factor", "history_length", "latest_factors", "list_factors", "register_factor",
    "resolve_spec",
]
