"""A lease document in MongoDB so one job never runs twice at once, across processes.

``{_id: <job name>, owner, expires_at}``: acquiring is one atomic
``find_one_and_update`` that matches only a free lease (expired, or already
ours) and upserts when there is none; a concurrent acquirer of a held lease
gets the unique ``_id`` error and loses. A crashed owner's lease expires after
``ttl``. Within one process APScheduler's ``max_instances=1`` already holds;
this covers two scheduler processes (e.g. a restart overlapping the old one).
Not a general distributed lock: no fencing tokens, the holder must finish its
work within the lease or renew it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)


class JobLease:
    """Acquire/renew/release the lease of one job for ``owner``."""

    def __init__(self, collection: Collection, job: str, owner: str, *, ttl_seconds: float,
                 clock: Callable[[], datetime]) -> None:
        self.collection = collection
        self.job = job
        self.owner = owner
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock

    def acquire(self) -> bool:
        """True when this owner holds the lease now (taken, or renewed)."""
        now = self.clock()
        try:
            doc = self.collection.find_one_and_update(
                {"_id": self.job, "$or": [{"expires_at": {"$lte": now}}, {"owner": self.owner}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.ttl, "acquired_at": now}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            holder = self.collection.find_one({"_id": self.job}) or {}
            log.info("job %s is running elsewhere (lease held by %s until %s)", self.job,
                     holder.get("owner"), holder.get("expires_at"),
                     extra={"job": self.job, "holder": holder.get("owner")})
            return False
        return bool(doc) and doc.get("owner") == self.owner

    def release(self) -> None:
        """Give the lease up (only if still ours)."""
        self.collection.delete_one({"_id": self.job, "owner": self.owner})
