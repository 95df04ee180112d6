"""Alert state: what to send after each evaluation, grouped into one message per channel.

Keyed by :attr:`Condition.key` (rule + strategy + pair + subject). A firing
condition is notified once, then again only after ``cooldown_seconds`` while
it keeps firing; when a condition for an active key comes back not firing, a
RESOLVED line follows (only for alerts that were notified). Everything one
:meth:`AlertManager.process` call produces goes out as one
:class:`~.alerts.Notification`: one POST / one email per channel per cycle,
however many alerts fired or resolved.

Inhibition: a firing alert can silence a weaker one on the same subject
(:data:`INHIBITIONS`): a pair with no signal for ``missing_bars`` bars is
also over its lag budget, and one message about it is enough. The inhibited
alert is still tracked (it counts as firing, for ``signal-monitor status``
and the metrics) and is notified if it keeps firing once the stronger one
clears. Delivery failures are logged (secrets redacted) and never stop the
other channels. State lives in memory (optionally every notified alert is
appended to a MongoDB history collection). Not the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from signal_export.logs import redact_text
from signal_export.monitoring.alerts import Alert, Condition, Notification, Rule, Status

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from signal_export.monitoring.config import MonitorConfig

log = logging.getLogger(__name__)

#: (stronger rule, weaker rule, fields that must be equal): while the stronger one fires
#: for a subject, the weaker one is not notified for the same subject.
INHIBITIONS: tuple[tuple[Rule, Rule, tuple[str, ...]], ...] = (
    (Rule.MISSING_SIGNALS, Rule.LAG_OVER_BUDGET, ("strategy_id", "pair")),
)


class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> None: ...


@dataclass
class _State:
    first_seen: datetime
    last_sent: datetime | None = None
    sent: int = 0
    inhibited: bool = False


def inhibited_keys(conditions: Sequence[Condition]) -> set[str]:
    """Keys of firing conditions silenced by a stronger firing one (:data:`INHIBITIONS`)."""
    out: set[str] = set()
    for strong, weak, equal in INHIBITIONS:
        sources = {tuple(getattr(c, f) for f in equal)
                   for c in conditions if c.firing and c.rule is strong}
        if sources:
            out.update(c.key for c in conditions if c.firing and c.rule is weak
                       and tuple(getattr(c, f) for f in equal) in sources)
    return out


class AlertManager:
    """Turns conditions into alerts (dedupe, cooldown, inhibition, resolve) and delivers
    each cycle's alerts as one notification per channel."""

    def __init__(self, channels: Sequence[Channel], *, cooldown_seconds: float = 900.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 history: Collection | None = None) -> None:
        self.channels = list(channels)
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.clock = clock
        self.history = history
        self.active: dict[str, _State] = {}
        self.delivery_failures = 0
        #: per channel name: notifications delivered / failed (for the metrics)
        self.delivered: dict[str, int] = {c.name: 0 for c in self.channels}
        self.failed: dict[str, int] = {c.name: 0 for c in self.channels}
        #: what the latest :meth:`process` delivered (None: nothing to send that cycle)
        self.last_notification: Notification | None = None

    @classmethod
    def from_config(cls, config: MonitorConfig, **kwargs: Any) -> AlertManager:
        from signal_export.monitoring.channels import build_channels

        return cls(build_channels(config.channels),
                   cooldown_seconds=config.alerts.cooldown_seconds, **kwargs)

    def firing_rules(self) -> dict[str, int]:
        """``{rule: n}`` of every alert firing now (inhibited ones included)."""
        out: dict[str, int] = {}
        for key in self.active:
            rule = key.split("|", 1)[0]
            out[rule] = out.get(rule, 0) + 1
        return out

    def process(self, conditions: Iterable[Condition]) -> list[Alert]:
        """Evaluate one cycle's conditions; deliver and return the alerts it produced."""
        now = self.clock()
        conditions = list(conditions)
        silenced = inhibited_keys(conditions)
        out: list[Alert] = []
        for cond in conditions:
            state = self.active.get(cond.key)
            if cond.firing:
                if state is None:
                    state = self.active[cond.key] = _State(now)
                state.inhibited = cond.key in silenced
                if state.inhibited:
                    continue
                if state.last_sent is None or now - state.last_sent >= self.cooldown:
                    out.append(Alert(cond, Status.FIRING, state.first_seen, state.sent))
                    state.last_sent = now
                    state.sent += 1
            elif state is not None:
                del self.active[cond.key]
                if state.sent:  # never notified (inhibited throughout): nothing to resolve
                    out.append(Alert(cond, Status.RESOLVED, state.first_seen, state.sent,
                                     resolved_at=now))
        self.last_notification = None
        if out:
            notified = {a.condition.key for a in out}
            still = sum(1 for k, s in self.active.items()
                        if s.sent and not s.inhibited and k not in notified)
            self.deliver(Notification(now, tuple(out), still_firing=still))
        return out

    def deliver(self, notification: Notification) -> None:
        """Send ``notification`` once to every channel; record it in the history."""
        self.last_notification = notification
        log.warning("alerts %s", notification.title, extra={"alerts": notification.as_dict()})
        for channel in self.channels:
            try:
                channel.send(notification)
            except Exception as exc:  # one broken channel must not silence the others
                self.delivery_failures += 1
                self.failed[channel.name] = self.failed.get(channel.name, 0) + 1
                log.error("alert channel %s failed: %s", channel.name,
                          redact_text(f"{type(exc).__name__}: {exc}"))
            else:
                self.delivered[channel.name] = self.delivered.get(channel.name, 0) + 1
        if self.history is not None:
            try:
                self.history.insert_many([a.as_dict() for a in notification.alerts])
            except Exception as exc:
                log.error("could not store alert history: %s", redact_text(str(exc)))
