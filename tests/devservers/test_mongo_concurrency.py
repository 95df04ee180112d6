"""Many concurrent client connections against one server give exact results.

Uses the session server (or real MongoDB with ``MONGO_TEST_URI``): 16 threads,
each with its own ``MongoClient``, upsert overlapping keys with ``$inc``; no
update may be lost or doubled. Readers are not starved by writers: a read
issued while a long bulk insert holds the write transaction completes first.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest
from pymongo import UpdateOne

THREADS, UPSERTS, KEYS = 16, 200, 50


def test_concurrent_upserts_lose_nothing(mongo_uri, mongo_db):
    mongo_db.counters.create_index("key", unique=True)

    def work(worker: int) -> int:
        client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        coll = client[mongo_db.name].counters
        for i in range(UPSERTS):
            coll.update_one({"key": (worker + i) % KEYS}, {"$inc": {"n": 1},
                                                            "$max": {"last": worker}},
                            upsert=True)
        client.close()
        return worker

    with ThreadPoolExecutor(THREADS) as pool:
        assert sorted(pool.map(work, range(THREADS))) == list(range(THREADS))
    docs = list(mongo_db.counters.find())
    assert len(docs) == KEYS
    assert sum(d["n"] for d in docs) == THREADS * UPSERTS


def test_concurrent_bulk_writers_and_readers(mongo_uri, mongo_db):
    coll = mongo_db.bulk
    coll.create_index([("w", 1), ("i", 1)], unique=True)

    def write(worker: int) -> tuple[int, int]:
        client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        c = client[mongo_db.name].bulk
        ops = [UpdateOne({"w": worker, "i": i}, {"$set": {"v": i}}, upsert=True)
               for i in range(300)]
        result = c.bulk_write(ops, ordered=False)
        seen = c.count_documents({"w": worker})
        client.close()
        return result.upserted_count, seen

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(write, range(8))) == [(300, 300)] * 8
    assert coll.count_documents({}) == 2400



def test_a_reader_completes_while_a_long_bulk_write_runs(mongo_uri, mongo_db):
    """Reads run on their own snapshot: finds and counts issued while one insert command
    holds the write transaction return before it commits (they see none of its documents)."""
    if os.environ.get("MONGO_TEST_URI"):
        pytest.skip("reads globalLock.activeClients of the local dev server")
    mongo_db.small.insert_many([{"i": i} for i in range(100)])
    mongo_db.big.create_index("k")
    mongo_db.big.create_index([("j", 1), ("i", 1)])
    status = mongo_db.client.admin
    writing = threading.Event()
    docs = [{"i": i, "j": i % 97, "k": f"key-{i:08d}", "pad": "x" * 200}
            for i in range(100_000)]  # one insert command (maxWriteBatchSize), one transaction

    def bulk() -> None:
        client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        try:
            client[mongo_db.name].big.insert_many(docs, ordered=False)
        finally:
            writing.clear()
            client.close()

    writer = threading.Thread(target=bulk)
    writing.set()
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while status.command("serverStatus")["globalLock"]["activeClients"]["writers"] == 0:
            assert writing.is_set(), "the bulk write ended before it was seen running"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        # the write transaction is open now: these must not wait for it
        assert len(list(mongo_db.small.find({"i": {"$lt": 50}}))) == 50
        assert mongo_db.small.count_documents({}) == 100
        assert mongo_db.big.count_documents({}) == 0
        assert list(mongo_db.big.find({"k": "key-00000007"})) == []
        assert writing.is_set(), "the reads waited for the bulk write"
    finally:
        writer.join()
    assert mongo_db.big.count_documents({}) == 100_000
