"""signal-reconcile: the bot's trades against the as_known backtest of the same period, every
difference with its cause (docs/RECONCILE.md).

:mod:`.classify` (pure: alignment and causes), :mod:`.inputs` (the bot's database/API/
write-back and logs, Freqtrade backtest results, running ``freqtrade backtesting``),
:mod:`.report` (table, JSON, HTML, Prometheus gauges), :mod:`.cli`.
"""
