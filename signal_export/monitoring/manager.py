"""Alert state: send when a condition starts firing, re-send after a cooldown, resolve when clear.

Keyed by :attr:`Condition.key` (rule + strategy + pair + subject). A firing
condition is sent once, then again only after ``cooldown_seconds`` while it
keeps firing; when a condition for an active key comes back not firing, one
RESOLVED message goes out. Delivery failures are logged (secrets redacted) and
never stop the other channels. State lives in memory (optionally every sent
alert is appended to a MongoDB history collection). Not the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from signal_export.logs import redact_text
from signal_export.monitoring.alerts import Alert, Condition, Status

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from signal_export.monitoring.config import MonitorConfig

log = logging.getLogger(__name__)


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


@dataclass
class _State:
    first_seen: datetime
    last_sent: datetime
    sent: int


class AlertManager:
    """Turns conditions into alerts (dedupe, cooldown, resolve) and delivers them."""

    def __init__(self, channels: Sequence[Channel], *, cooldown_seconds: float = 900.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 history: Collection | None = None) -> None:
        self.channels = list(channels)
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.clock = clock
        self.history = history
        self.active: dict[str, _State] = {}
        self.delivery_failures = 0

    @classmethod
    def from_config(cls, config: MonitorConfig, **kwargs: Any) -> AlertManager:
        from signal_export.monitoring.channels import build_channels

        return cls(build_channels(config.channels),
                   cooldown_seconds=config.alerts.cooldown_seconds, **kwargs)

    def process(self, conditions: Iterable[Condition]) -> list[Alert]:
        """Evaluate conditions; returns (and delivers) the alerts sent this time."""
        now = self.clock()
        out: list[Alert] = []
        for cond in conditions:
            state = self.active.get(cond.key)
            if cond.firing:
                if state is None:
                    self.active[cond.key] = _State(now, now, 1)
                    out.append(Alert(cond, Status.FIRING, now, 0))
                elif now - state.last_sent >= self.cooldown:
                    out.append(Alert(cond, Status.FIRING, state.first_seen, state.sent))
                    state.last_sent = now
                    state.sent += 1
            elif state is not None:
                del self.active[cond.key]
                out.append(Alert(cond, Status.RESOLVED, state.first_seen, state.sent))
        for alert in out:
            self.deliver(alert)
        return out

    def deliver(self, alert: Alert) -> None:
        log.warning("alert %s", alert.title, extra={"alert": alert.as_dict()})
        for channel in self.channels:
            try:
                channel.send(alert)
            except Exception as exc:  # one broken channel must not silence the others
                self.delivery_failures += 1
                log.error("alert channel %s failed: %s", channel.name,
                          redact_text(f"{type(exc).__name__}: {exc}"))
        if self.history is not None:
            try:
                self.history.insert_one(alert.as_dict())
            except Exception as exc:
                log.error("could not store alert history: %s", redact_text(str(exc)))
