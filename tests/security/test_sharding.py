"""The sharding plan (signal_export.sharding) and ``signal-bootstrap-users --shard``.

What runs where: the plan and the size rules are pure; the refusal on a server that is
not a mongos, the shard-key indexes and the CLI run against the real dev server (wire
protocol, real pymongo). No mongos can run on this machine (no mongod/mongos binary, no
Docker engine), so the mongos path - ``enableSharding``/``shardCollection`` and their
idempotency - is checked against a recording stand-in that answers like a mongos
(``hello.msg == "isdbgrid"``, ``config.collections``, error code 23); docs/SCALING.md says
so. The refusal tests assume the test server is not a mongos (the dev server, or the real
MongoDB of ``MONGO_TEST_URI`` / ``MONGO_TEST_ADMIN_URI`` in CI: a replica set).
"""

from __future__ import annotations

import re
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from bson import SON
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING
from pymongo.errors import OperationFailure

import signal_export.sharding as sharding
from signal_export.contract import SIGNAL_KEY
from signal_export.exporter import export_signals
from signal_export.security.bootstrap import (
    SHARD_APPLY,
    BootstrapConfig,
    BootstrapError,
    bootstrap,
)
from signal_export.security.cli import main
from signal_export.settings import Settings
from signal_export.sharding import (
    SIGNAL_SHARD_KEY,
    ShardingError,
    apply_sharding,
    keystring_bytes,
    plan_sharding,
    unique_index_compatible,
    yearly_footprint,
)
from signal_export.store import (
    SIGNAL_KEY_INDEX,
    ensure_market_indexes,
    ensure_signal_indexes,
)

SCALING = Path(__file__).resolve().parents[2] / "docs" / "SCALING.md"
HISTORY_COLLECTION = "crypto_signals_history"  # the default <collection>_history


# --- the plan (pure) --------------------------------------------------------


def test_signal_shard_key_leads_the_unique_signal_index():
    """The unique index on SIGNAL_KEY is what makes re-exports idempotent; MongoDB keeps it
    unique on a sharded collection only if the shard key is its prefix. A change of
    SIGNAL_KEY (order or fields) fails here and needs a deliberate resharding decision."""
    assert unique_index_compatible(SIGNAL_SHARD_KEY, SIGNAL_KEY)
    plan = plan_sharding(Settings())
    signals = plan.sharded[0]
    assert signals.namespace == "signals.crypto_signals"
    assert signals.unique_index == tuple(SIGNAL_KEY)
    assert list(signals.key_doc().items()) == [(f, 1) for f in SIGNAL_SHARD_KEY]
    # the shard key is the whole unique index: no second index, and shardCollection says unique
    assert signals.shard_command()["unique"] is True


@pytest.mark.parametrize("shard_key, index, ok", [
    (("strategy_id", "pair", "timeframe", "ts"), SIGNAL_KEY, True),
    (("strategy_id", "pair"), SIGNAL_KEY, True),
    (("strategy_id", "timeframe", "ts"), SIGNAL_KEY, False),  # pair is 2nd in the index
    (("pair",), SIGNAL_KEY, False),
    (("strategy_id", "pair"), ("_id",), True),  # the _id index is always allowed
])
def test_unique_index_prefix_rule(shard_key, index, ok):
    assert unique_index_compatible(shard_key, index) is ok


def test_a_changed_signal_key_fails_the_plan_with_one_line(monkeypatch):
    monkeypatch.setattr(sharding, "SIGNAL_KEY", ("strategy_id", "timeframe", "pair", "ts"))
    with pytest.raises(ShardingError) as err:
        plan_sharding(Settings())
    msg = str(err.value)
    assert "signals.crypto_signals" in msg and "not a prefix" in msg and "\n" not in msg


def test_plan_commands_use_the_configured_names_and_keep_small_collections_unsharded():
    settings = Settings(collection="sig_1m", market_1m_collection="bars_1m")
    plan = plan_sharding(settings, "sigdb", "mktdb")
    commands = plan.commands()
    assert commands[:2] == [SON([("enableSharding", "sigdb")]),
                            SON([("enableSharding", "mktdb")])]
    shards = {c["shardCollection"]: list(c["key"].items()) for c in commands[2:]}
    assert shards == {
        "sigdb.sig_1m": [(f, 1) for f in SIGNAL_SHARD_KEY],
        "sigdb.sig_1m_history": [(f, 1) for f in SIGNAL_SHARD_KEY],
        "mktdb.bars_1m": [("symbol", 1), ("datetime", 1)],
    }
    # the history collection's own unique index (if any) is checked on the server, not assumed
    assert "unique" not in commands[3]
    assert {f"{u.db}.{u.collection}" for u in plan.unsharded} == {
        "sigdb.export_runs", "mktdb.crypto_market", "sigdb.ft_trades", "sigdb.ft_positions"}


def test_keystring_sizes_follow_the_encoding():
    # strings: type byte + bytes + terminator; date: type byte + 8; end byte, RecordId (5),
    # cell headers (3)
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    assert keystring_bytes(["minute_rank", "SOL/USDT", "1m", ts]) == (
        (1 + 11 + 1) + (1 + 8 + 1) + (1 + 2 + 1) + (1 + 8) + 1 + 5 + 3)
    assert keystring_bytes([ts]) == 1 + 8 + 1 + 5 + 3
    with pytest.raises(TypeError, match="float"):
        keystring_bytes([1.5])


def test_footprint_counts_bars_per_year():
    one = yearly_footprint(500, "1m", 400, 45)
    assert one.documents == 500 * 525_600
    assert one.data_bytes == one.documents * 400
    assert one.key_index_bytes == one.documents * 45
    ninety = yearly_footprint(500, "1m", 400, 45, days=90)
    assert ninety.documents == 500 * 1440 * 90
    assert yearly_footprint(5000, "1h", 400, 45, ttl=False).ttl_index_bytes == 0


def _signal_rows(pairs: list[str], bars: int) -> pd.DataFrame:
    """Documents shaped like the 1m pipeline's (configs/pipeline.1m.yaml: rank, top 1)."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    rows = [{"ts": start + timedelta(minutes=i), "timeframe": "1m", "pair": pair,
             "strategy_id": "minute_rank", "score": 1.0, "weight": 1.0,
             "note": "rank by ret_120 (descending), top 1", "source": "research", "version": 1}
            for pair in pairs for i in range(bars)]
    return pd.DataFrame(rows)


def _documented(name: str) -> int:
    found = re.search(rf"`{name} = (\d+)`", SCALING.read_text())
    assert found, f"docs/SCALING.md states no `{name} = N`"
    return int(found.group(1))


def _gb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB"


def _count(n: int) -> str:
    return f"{n / 1e9:,.2f} B" if n >= 1e9 else f"{n / 1e6:,.1f} M"


def test_scaling_doc_sizes_are_measured_from_exported_documents(mongo_db):
    """The document size SCALING.md works with is what the exporter stores today (within a
    few bytes of note/pair length), and its tables are yearly_footprint of that size."""
    export_signals(_signal_rows(["BTC/USDT", "ETH/USDT", "SOL/USDT"], 200),
                   mongo_db["crypto_signals"])
    raw = mongo_db.get_collection("crypto_signals",
                                  codec_options=CodecOptions(document_class=RawBSONDocument))
    sizes = [len(doc.raw) for doc in raw.find()]
    assert len(sizes) == 600
    doc_bytes, key_bytes = _documented("SIGNAL_DOC_BYTES"), _documented("SIGNAL_KEY_BYTES")
    assert abs(statistics.mean(sizes) - doc_bytes) <= 0.05 * doc_bytes
    stored = mongo_db["crypto_signals"].find_one({}, {"_id": 0, **dict.fromkeys(SIGNAL_KEY, 1)})
    assert keystring_bytes([stored[f] for f in SIGNAL_KEY]) == key_bytes
    text = SCALING.read_text()
    for pairs in (500, 5000):
        for tf in ("1m", "1h"):
            f = yearly_footprint(pairs, tf, doc_bytes, key_bytes)
            row = (f"| {pairs:,} | {tf} | {_count(f.documents)} | {_gb(f.data_bytes)} | "
                   f"{_gb(f.key_index_bytes)} | {_gb(f.index_bytes)} |")
            assert row in text, row
        for days in (30, 90):
            f = yearly_footprint(pairs, "1m", doc_bytes, key_bytes, days=days)
            row = (f"| {pairs:,} | 1m | {days} d | {_count(f.documents)} | {_gb(f.data_bytes)} | "
                   f"{_gb(f.key_index_bytes)} | {_gb(f.index_bytes)} |")
            assert row in text, row


# --- against the dev server (not a mongos) ----------------------------------


def _names(mongo_db) -> tuple[str, str]:
    return mongo_db.name, mongo_db.name + "_mkt"


def test_apply_refuses_a_server_that_is_not_a_mongos_and_creates_nothing(mongo_client, mongo_db):
    signals_db, market_db = _names(mongo_db)
    plan = plan_sharding(Settings(), signals_db, market_db)
    with pytest.raises(ShardingError) as err:
        apply_sharding(mongo_client, plan)
    msg = str(err.value)
    assert "not point at a mongos" in msg and "isdbgrid" in msg and "\n" not in msg
    assert signals_db not in mongo_client.list_database_names()
    assert market_db not in mongo_client.list_database_names()


def test_indexes_only_uses_the_store_indexes(mongo_client, mongo_db):
    signals_db, market_db = _names(mongo_db)
    settings = Settings()
    ensure_signal_indexes(mongo_db[settings.collection], expire_after_seconds=86_400)
    ensure_market_indexes(mongo_client[market_db], settings)
    plan = plan_sharding(settings, signals_db, market_db)
    try:
        lines = apply_sharding(mongo_client, plan, indexes_only=True)
        assert lines[0].endswith(f"supported by index {SIGNAL_KEY_INDEX}")
        assert lines[2].endswith("supported by index symbol_datetime")
        for spec in plan.sharded:  # exactly one index backs each key: none created twice
            info = mongo_client[spec.db][spec.collection].index_information()
            backing = [n for n, ix in info.items()
                       if [f for f, _ in ix["key"]][:len(spec.key)] == list(spec.key)]
            assert len(backing) == 1, (spec.namespace, backing)
    finally:
        mongo_client.drop_database(market_db)


def test_indexes_only_creates_a_missing_shard_key_index_once(mongo_client, mongo_db):
    signals_db, market_db = _names(mongo_db)
    mongo_db[HISTORY_COLLECTION].insert_one({"x": 1})  # a collection with its _id index only
    plan = plan_sharding(Settings(), signals_db, market_db)
    history = next(s for s in plan.sharded if s.collection == HISTORY_COLLECTION)
    try:
        first = sharding.ensure_shard_key_index(mongo_db[HISTORY_COLLECTION], history)
        assert first.endswith(f"created index shard_key {list(SIGNAL_SHARD_KEY)}")
        info = mongo_db[HISTORY_COLLECTION].index_information()
        assert info["shard_key"]["key"] == [(f, 1) for f in SIGNAL_SHARD_KEY]
        again = sharding.ensure_shard_key_index(mongo_db[HISTORY_COLLECTION], history)
        assert again.endswith("supported by index shard_key")
        assert set(mongo_db[HISTORY_COLLECTION].index_information()) == {"_id_", "shard_key"}
    finally:
        mongo_client.drop_database(market_db)


def test_a_unique_index_the_shard_key_cannot_keep_is_named(mongo_client, mongo_db):
    signals_db, market_db = _names(mongo_db)
    mongo_db[HISTORY_COLLECTION].create_index(
        [("strategy_id", ASCENDING), ("timeframe", ASCENDING), ("ts", ASCENDING),
         ("pair", ASCENDING)], name="by_time", unique=True)
    with pytest.raises(ShardingError, match=r"crypto_signals_history: unique index\(es\) "
                                            r"\['by_time'\] do not start with the shard key"):
        apply_sharding(mongo_client, plan_sharding(Settings(), signals_db, market_db),
                       indexes_only=True)


# --- the CLI against the auth-enabled dev server -----------------------------


@pytest.fixture
def cli_env(monkeypatch, tmp_path, auth_server, db_names):
    """One service user (exporter) and the admin URI in a secret file."""
    admin_file = tmp_path / "mongo_admin_uri"
    admin_file.write_text(auth_server.admin_uri + "\n")
    monkeypatch.setenv("MONGO_ADMIN_URI_FILE", str(admin_file))
    monkeypatch.delenv("MONGO_ADMIN_URI", raising=False)
    monkeypatch.setenv("EXT_SIG_DB", db_names[0])
    monkeypatch.setenv("MARKET_DB", db_names[1])
    user = f"exporter_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("MONGO_EXPORTER_USER", user)
    monkeypatch.setenv("MONGO_EXPORTER_PASSWORD", "exporter-Secret-" + uuid.uuid4().hex)
    monkeypatch.chdir(tmp_path)
    return user


def test_cli_shard_on_a_non_mongos_is_one_line_and_changes_nothing(
        cli_env, capsys, admin_client, db_names):
    code = main(["--env-file", "missing.env", "--users", "exporter", "--shard"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "mongos" in err and "--shard-indexes-only" in err
    assert not admin_client.admin.command("usersInfo", cli_env)["users"]
    assert db_names[0] not in admin_client.list_database_names()


def test_cli_shard_indexes_only_creates_users_and_shard_key_indexes(
        cli_env, capsys, admin_client, db_names):
    try:
        code = main(["--env-file", "missing.env", "--users", "exporter", "--shard-indexes-only"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"{db_names[0]}.crypto_signals: shard key {list(SIGNAL_SHARD_KEY)} supported " \
               f"by index {SIGNAL_KEY_INDEX}" in out
        assert f"{db_names[0]}.{HISTORY_COLLECTION}: " in out
        assert f"{db_names[1]}.crypto_market_1m: shard key ['symbol', 'datetime'] supported " \
               "by index symbol_datetime" in out
        assert f"created user {cli_env}@admin" in out
    finally:
        admin_client.admin.command("dropUser", cli_env)
        for name in db_names:
            admin_client.drop_database(name)


def test_cli_plan_with_shard_prints_the_commands_without_a_server(cli_env, capsys, db_names):
    assert main(["--env-file", "missing.env", "--plan", "--shard"]) == 0
    out = capsys.readouterr().out
    assert f'"shardCollection": "{db_names[0]}.crypto_signals"' in out
    assert f'"enableSharding": "{db_names[1]}"' in out


def test_bootstrap_config_rejects_an_unknown_shard_mode(db_names):
    with pytest.raises(BootstrapError, match="shard: 'yes' is not one of"):
        BootstrapConfig(signals_db=db_names[0], market_db=db_names[1], users={}, passwords={},
                        shard="yes")


# --- the mongos path, against a recording stand-in --------------------------


class _Collection:
    def __init__(self, server: _Mongos, ns: str) -> None:
        self.server, self.ns = server, ns

    def index_information(self) -> dict[str, dict[str, Any]]:
        return {"_id_": {"key": [("_id", 1)]}, **self.server.indexes.get(self.ns, {})}

    def create_index(self, keys: list[tuple[str, int]], name: str, **kwargs: Any) -> str:
        self.server.calls.append(("createIndexes", self.ns, name))
        self.server.indexes.setdefault(self.ns, {})[name] = {"key": list(keys), **kwargs}
        return name

    def find(self, flt: dict, projection: dict | None = None) -> list[dict]:
        assert self.ns == "config.collections"
        wanted = flt["_id"]["$in"]
        return [{"_id": ns, "key": SON(key)} for ns, key in self.server.sharded.items()
                if ns in wanted]


class _Database:
    def __init__(self, server: _Mongos, name: str) -> None:
        self.server, self.name = server, name

    def __getitem__(self, coll: str) -> _Collection:
        return _Collection(self.server, f"{self.name}.{coll}")

    def command(self, command: str | SON, value: Any = 1, **kwargs: Any) -> dict:
        assert self.name == "admin", "cluster commands run on admin"
        cmd = SON([(command, value)]) if isinstance(command, str) else command
        return self.server.run(cmd)


class _Mongos:
    """Answers the commands apply_sharding sends like a mongos would, and records them."""

    def __init__(self, msg: str | None = "isdbgrid") -> None:
        self.msg = msg
        self.calls: list[tuple] = []
        self.indexes: dict[str, dict[str, dict]] = {}
        self.sharded: dict[str, list[tuple[str, Any]]] = {}
        self.race: dict[str, list[tuple[str, Any]]] = {}  # sharded by "someone else" first

    def __getitem__(self, name: str) -> _Database:
        return _Database(self, name)

    @property
    def admin(self) -> _Database:
        return _Database(self, "admin")

    def run(self, cmd: SON) -> dict:
        name = next(iter(cmd))
        self.calls.append((name, cmd[name]))
        if name == "hello":
            return {"isWritablePrimary": True, **({"msg": self.msg} if self.msg else {})}
        if name == "enableSharding":
            return {"ok": 1}
        if name == "shardCollection":
            ns = cmd[name]
            if ns in self.race:
                self.sharded[ns] = self.race.pop(ns)
            if ns in self.sharded:
                raise OperationFailure("already sharded", ALREADY_INITIALIZED)
            self.sharded[ns] = list(cmd["key"].items())
            return {"collectionsharded": ns, "ok": 1}
        raise AssertionError(f"unexpected command {name}")


ALREADY_INITIALIZED = 23


def _store_indexes(server: _Mongos, plan: sharding.ShardingPlan) -> None:
    """What ensure_signal_indexes / ensure_market_indexes leave on the cluster."""
    signals, _, market = plan.sharded
    server.indexes[signals.namespace] = {
        SIGNAL_KEY_INDEX: {"key": [(f, 1) for f in SIGNAL_KEY], "unique": True},
        "signal_ts_ttl": {"key": [("ts", 1)], "expireAfterSeconds": 3600}}
    server.indexes[market.namespace] = {
        "symbol_datetime": {"key": [("symbol", 1), ("datetime", 1)], "unique": True},
        "datetime": {"key": [("datetime", 1)]}}


def test_mongos_first_run_enables_and_shards_each_collection_once():
    server = _Mongos()
    plan = plan_sharding(Settings(), "signals", "market")
    _store_indexes(server, plan)
    lines = apply_sharding(server, plan)
    assert [c[0] for c in server.calls] == [
        "hello", "createIndexes", "enableSharding", "enableSharding",
        "shardCollection", "shardCollection", "shardCollection"]
    assert ("createIndexes", f"signals.{HISTORY_COLLECTION}", "shard_key") in server.calls
    assert server.sharded == {
        "signals.crypto_signals": [(f, 1) for f in SIGNAL_SHARD_KEY],
        f"signals.{HISTORY_COLLECTION}": [(f, 1) for f in SIGNAL_SHARD_KEY],
        "market.crypto_market_1m": [("symbol", 1), ("datetime", 1)]}
    assert lines[-3:] == [f"{s.namespace}: sharded on {list(s.key)}" for s in plan.sharded]

    server.calls.clear()  # the second run: nothing to create, nothing to shard
    again = apply_sharding(server, plan)
    assert [c[0] for c in server.calls] == ["hello", "enableSharding", "enableSharding"]
    assert again[-3:] == [f"{s.namespace}: already sharded on {list(s.key)}"
                          for s in plan.sharded]


def test_mongos_collection_sharded_on_another_key_is_refused_not_changed():
    server = _Mongos()
    plan = plan_sharding(Settings(), "signals", "market")
    _store_indexes(server, plan)
    server.sharded["signals.crypto_signals"] = [("strategy_id", 1), ("pair", 1)]
    with pytest.raises(ShardingError) as err:
        apply_sharding(server, plan)
    msg = str(err.value)
    assert "signals.crypto_signals is already sharded on ['strategy_id', 'pair']" in msg
    assert "reshardCollection" in msg and "\n" not in msg
    assert server.sharded["signals.crypto_signals"] == [("strategy_id", 1), ("pair", 1)]


def test_mongos_concurrent_shard_collection_on_the_same_key_counts_as_done():
    server = _Mongos()
    plan = plan_sharding(Settings(), "signals", "market")
    _store_indexes(server, plan)
    server.race["market.crypto_market_1m"] = [("symbol", 1), ("datetime", 1)]
    lines = apply_sharding(server, plan)
    assert lines[-1] == "market.crypto_market_1m: already sharded on ['symbol', 'datetime']"


def test_non_mongos_reply_is_refused_before_any_command():
    server = _Mongos(msg=None)  # a replica set member: hello has no msg
    with pytest.raises(ShardingError, match="hello.msg=None"):
        apply_sharding(server, plan_sharding(Settings(), "signals", "market"))
    assert server.calls == [("hello", 1)]


def test_bootstrap_with_shard_apply_refuses_before_creating_anything(admin_client, db_names):
    """Through bootstrap(): the mongos check comes first, so a wrong admin URI leaves no
    databases or users behind."""
    user = f"exporter_{uuid.uuid4().hex[:6]}"
    config = BootstrapConfig(signals_db=db_names[0], market_db=db_names[1],
                             users={"exporter": user},
                             passwords={"exporter": "exporter-Pw-" + uuid.uuid4().hex},
                             shard=SHARD_APPLY)
    with pytest.raises(BootstrapError, match="not point at a mongos"):
        bootstrap(admin_client, config)
    assert db_names[0] not in admin_client.list_database_names()
    assert not admin_client.admin.command("usersInfo", user)["users"]


def test_bootstrap_prepares_the_configured_history_collection(admin_client, db_names):
    """EXT_SIG_HISTORY_COLLECTION names the history: bootstrap gives it the store's unique
    index and the sharding plan takes the same name."""
    user = f"exporter_{uuid.uuid4().hex[:6]}"
    settings = Settings(history_collection="versions_x")
    config = BootstrapConfig(signals_db=db_names[0], market_db=db_names[1],
                             users={"exporter": user},
                             passwords={"exporter": "exporter-Pw-" + uuid.uuid4().hex},
                             settings=settings, shard="indexes-only")
    try:
        report = bootstrap(admin_client, config)
        info = admin_client[db_names[0]]["versions_x"].index_information()
        assert info["signal_key_version"]["unique"]
        assert (f"{db_names[0]}.versions_x: shard key {list(SIGNAL_SHARD_KEY)} supported by "
                "index signal_key_version") in report.actions
        assert "crypto_signals_history" not in admin_client[db_names[0]].list_collection_names()
    finally:
        admin_client.admin.command("dropUser", user)
        for name in db_names:
            admin_client.drop_database(name)
