"""Request rate limiting: one token bucket per key, in memory.

Keys are producer names (the per-producer limit) or client addresses (the budget for
unauthenticated refusals, see :mod:`signal_export.ingest.app`). A bucket holds up to
``burst`` requests and refills at ``per_second``; a request that finds it empty is
refused with the seconds until one more request fits (the HTTP layer sends that as
``Retry-After``). At most ``max_keys`` buckets are kept (least recently used dropped
first), so requests from ever new addresses cannot grow memory without bound. Buckets
are per process: with several server processes each enforces its own limit
(documented, not shared).

Not for: authentication or body-size limits.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from signal_export.ingest.tokens import RateLimit


@dataclass
class _Bucket:
    tokens: float
    updated: float


DEFAULT_MAX_KEYS = 10_000


class RateLimiter:
    """Thread-safe token buckets by key (producer name, client address); ``clock`` is
    injectable for tests."""

    def __init__(self, default: RateLimit, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.default = default
        self._clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str, limit: RateLimit | None = None) -> float:
        """Take one request from ``key``'s bucket: 0.0 if allowed, else seconds to wait."""
        limit = limit or self.default
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                while len(self._buckets) >= self.max_keys:
                    self._buckets.popitem(last=False)
                bucket = self._buckets[key] = _Bucket(float(limit.burst), now)
            else:
                self._buckets.move_to_end(key)
            bucket.tokens = min(float(limit.burst),
                                bucket.tokens + (now - bucket.updated) * limit.per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / limit.per_second


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, rounded up and at least 1 (``Retry-After`` takes integers)."""
    return str(max(1, math.ceil(wait_s)))
