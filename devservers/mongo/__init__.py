"""Local MongoDB wire-protocol DEVELOPMENT server (like ``moto_server`` for AWS).

DEVELOPMENT SERVER, NOT A PRODUCTION DATABASE. It lets the demo, the
integration tests, Freqtrade and the exporter talk real pymongo to a local
``mongodb://`` URI on machines where no genuine ``mongod`` can be installed.
Own threaded wire-protocol front end, durable storage and real indexes in SQLite, MongoDB
semantics for the commands the project uses. Production uses real MongoDB.
Start it with ``python -m devservers.mongo`` (from the repository root) or from
Python with :class:`devservers.mongo.process.LocalMongoProcess`.
"""
