"""Monitoring of the bridge: signal lag, export health, Freqtrade execution, alerts, write-back.

Pure checks over frames/records live in :mod:`.lag`, :mod:`.rules`,
:mod:`.execution` and :mod:`.reconcile`; I/O at the edges in
:mod:`.freqtrade_api` (Freqtrade REST), :mod:`.health` (MongoDB reads),
:mod:`.writeback` (trades into MongoDB), :mod:`.channels` (webhook, SMTP) and
:mod:`.metrics` (Prometheus). :mod:`.monitor` runs one cycle of everything;
``signal-monitor`` is the CLI.
"""
