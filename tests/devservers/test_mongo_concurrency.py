"""Many concurrent client connections against one server give exact results.

Uses the session server (or real MongoDB with ``MONGO_TEST_URI``): 16 threads,
each with its own ``MongoClient``, upsert overlapping keys with ``$inc``; no
update may be lost or doubled.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pymongo
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
