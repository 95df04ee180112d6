"""Small fakes shared by the scheduler and monitoring tests: a settable clock and an alert
channel that records what it was given (the real channels have their own tests)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


class FakeClock:
    """A settable clock: ``clock()`` returns the current fake time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingChannel:
    """An alert channel that keeps every alert it was asked to send."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, alert: Any) -> None:
        self.sent.append(alert)
