"""A fenced lease in MongoDB, so one job never runs twice at once, across processes.

``{_id: <job name>, owner, epoch, expires_at}``. Taking a free lease (expired,
released, or never taken) is one atomic ``find_one_and_update`` that matches
only ``expires_at <= now``, upserts when there is none, and increments
``epoch``; a concurrent taker of a held lease gets the unique ``_id`` error and
loses. Renewing matches our owner *and* our epoch and an unexpired lease, so a
holder that was paused past its lease (SIGSTOP, a long GC, a suspended VM) and
lost it cannot renew: it sees :attr:`JobLease.epoch` change (or the lease held
elsewhere) and must recompute its work. Releasing frees the lease without
deleting it, so the epoch only ever grows: it is the fencing token every write
of the holder carries (see :mod:`signal_export.scheduler.runner`).
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
    """Acquire/renew/release the lease of one job for ``owner``; ``epoch`` is the fence."""

    def __init__(self, collection: Collection, job: str, owner: str, *, ttl_seconds: float,
                 clock: Callable[[], datetime]) -> None:
        self.collection = collection
        self.job = job
        self.owner = owner
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock
        #: The epoch under which we hold the lease; ``None`` when we do not hold it.
        self.epoch: int | None = None

    def acquire(self) -> bool:
        """True when this owner holds the lease now: renewed (same epoch) or taken (new one)."""
        now = self.clock()
        if self.epoch is not None:
            if self.collection.find_one_and_update(
                    {"_id": self.job, "owner": self.owner, "epoch": self.epoch,
                     "expires_at": {"$gt": now}},
                    {"$set": {"expires_at": now + self.ttl}}) is not None:
                return True
            log.warning("job %s: lease of epoch %s lost (expired or taken over)", self.job,
                        self.epoch, extra={"job": self.job, "epoch": self.epoch})
            self.epoch = None
        try:
            doc = self.collection.find_one_and_update(
                {"_id": self.job, "expires_at": {"$lte": now}},
                {"$set": {"owner": self.owner, "expires_at": now + self.ttl, "acquired_at": now},
                 "$inc": {"epoch": 1}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            holder = self.collection.find_one({"_id": self.job}) or {}
            log.info("job %s is running elsewhere (lease epoch %s held by %s until %s)",
                     self.job, holder.get("epoch"), holder.get("owner"),
                     holder.get("expires_at"),
                     extra={"job": self.job, "holder": holder.get("owner")})
            return False
        self.epoch = int(doc["epoch"])
        return True

    def release(self) -> None:
        """Give the lease up (only if still ours); the document and its epoch stay."""
        if self.epoch is None:
            return
        self.collection.update_one({"_id": self.job, "owner": self.owner, "epoch": self.epoch},
                                   {"$set": {"expires_at": self.clock()}})
        self.epoch = None
