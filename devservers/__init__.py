"""Development servers: stand-ins for MongoDB and a Binance-compatible exchange.

They exist so the demo and the tests run offline with real clients (pymongo,
ccxt, Freqtrade). They are development tools, not product: nothing under
``research/``, ``signal_export/`` or ``user_data/`` imports them, and
production uses a real MongoDB and a real exchange.
"""
