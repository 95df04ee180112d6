"""What an alert is: a rule's verdict on one subject (strategy/pair/job), and its message.

A rule returns a :class:`Condition` for every subject it looked at, firing or
not, so the alert manager can tell "cleared" from "not checked". Each carries
the strategy_id, pair, time, observed value and threshold ops need. Not the
delivery (:mod:`.channels`) nor the dedupe (:mod:`.manager`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Rule(StrEnum):
    MISSING_SIGNALS = "missing_signals"
    LAG_OVER_BUDGET = "lag_over_budget"
    EXPORT_FAILURE = "export_failure"
    EXPORT_LATENCY = "export_latency"
    CONSECUTIVE_REJECTIONS = "consecutive_rejections"
    SLIPPAGE = "slippage"
    LOW_BALANCE = "low_balance"
    RATE_LIMIT = "rate_limit"
    MONGO_DOWN = "mongo_down"
    BOT_DOWN = "bot_down"
    RECONCILIATION = "reconciliation"
    EXPORT_STALLED = "export_stalled"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Condition:
    """One rule's verdict on one subject at ``time``."""

    rule: Rule
    firing: bool
    time: datetime
    value: float | None
    threshold: float | None
    detail: str
    strategy_id: str | None = None
    pair: str | None = None
    subject: str | None = None  # job name, bot name... when strategy/pair do not identify it
    severity: str = "warning"

    @property
    def key(self) -> str:
        """Dedupe key: the same rule on the same subject is one alert."""
        return "|".join([str(self.rule), self.strategy_id or "-", self.pair or "-",
                         self.subject or "-"])


@dataclass(frozen=True)
class Alert:
    """A message sent to the channels: a condition that started firing, re-fired, or cleared."""

    condition: Condition
    status: Status
    first_seen: datetime
    repeat: int = 0  # how many times it was sent before while firing

    @property
    def title(self) -> str:
        c = self.condition
        where = " ".join(p for p in (c.strategy_id, c.pair, c.subject) if p)
        return f"[{self.status.upper()}] {c.rule} {where}".rstrip()

    def message(self) -> str:
        c = self.condition
        lines = [self.title, c.detail,
                 f"strategy_id={c.strategy_id or '-'} pair={c.pair or '-'} "
                 f"time={c.time.isoformat()} value={_fmt(c.value)} threshold={_fmt(c.threshold)}"]
        if c.subject:
            lines.append(f"subject={c.subject}")
        if self.status is Status.RESOLVED:
            lines.append(f"firing since {self.first_seen.isoformat()}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        c = asdict(self.condition)
        c["rule"] = str(self.condition.rule)
        c["time"] = self.condition.time.isoformat()
        for name in ("value", "threshold"):  # JSON has no inf/NaN ("never seen" is inf)
            if c[name] is not None and not math.isfinite(c[name]):
                c[name] = None
        return {"status": str(self.status), "title": self.title, "key": self.condition.key,
                "first_seen": self.first_seen.isoformat(), "repeat": self.repeat, **c}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"
