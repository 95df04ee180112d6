"""Signal ingest HTTP API: external producers (TradingView alerts, ML servers, research UIs)
write signals into ``crypto_signals`` through the same contract and exporter as research.

Modules: ``tokens`` (hashed per-producer bearer tokens bound to strategy_ids),
``tradingview`` (alert body mapping and the bar-``ts`` grace window), ``service``
(items -> contract -> exporter, per-item results), ``app`` (FastAPI routes, limits,
error shapes), ``ratelimit``, ``metrics`` (Prometheus), ``config``, ``server``
(uvicorn) and ``cli`` (``signal-ingest`` / ``python -m signal_export.ingest``).
"""
