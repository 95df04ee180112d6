"""One retry helper: exponential backoff for calls that can fail transiently.

Used by the exporter (MongoDB: connection lost, timeouts, no server selectable,
``RetryableWriteError``) and by the ccxt market import (rate limits, network
errors). Each caller says what is transient; the backoff, the counting and the
log line are the same everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo.errors import ConnectionFailure, PyMongoError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base_s * 2**attempt``, capped at ``max_s``, ``max_retries`` times."""

    max_retries: int = 6
    base_s: float = 0.25
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * (2 ** attempt))


def is_transient_mongo(exc: BaseException) -> bool:
    """MongoDB errors worth retrying: connection lost/timeouts/no server, or labelled retryable.

    A write-concern error counts only when the server labels it retryable.
    """
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelection...
        return True
    return isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")


def call_with_retries(action: Callable[[], T], policy: RetryPolicy, *,
                      transient: Callable[[BaseException], bool], what: str,
                      on_retry: Callable[[int, float], None] | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      log_extra: dict[str, Any] | None = None) -> T:
    """``action()``; on an error ``transient`` accepts, wait and call again, up to the policy.

    ``on_retry(attempt, delay)`` is called before each wait (counting). The last
    error, or any error that is not transient, propagates unchanged.
    """
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if not transient(exc) or attempt >= policy.max_retries:
                raise
            delay = policy.delay(attempt)
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, delay)
            log.warning("transient error during %s (attempt %d/%d), retrying in %.2fs: %s: %s",
                        what, attempt, policy.max_retries, delay, type(exc).__name__, exc,
                        extra={**(log_extra or {}), "retry_delay_s": delay,
                               "error": type(exc).__name__})
            sleep(delay)
