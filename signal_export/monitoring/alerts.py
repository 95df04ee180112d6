"""What an alert is: a rule's verdict on one subject (strategy/pair/job), and how it reads.

A rule returns a :class:`Condition` for every subject it looked at, firing or
not, so the alert manager can tell "cleared" from "not checked". Each carries
the strategy_id, pair, time, observed value and threshold ops need, and the
unit of those numbers, so the text says "2 h 5 min" or "never" rather than
``7500`` or ``inf``. An :class:`Alert` is one condition that started firing,
fired again after the cooldown, or cleared; a :class:`Notification` is what
one evaluation sends to each channel: every alert of that cycle in one message.
Not the delivery (:mod:`.channels`) nor the dedupe (:mod:`.manager`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

#: Lines per section of a grouped message; the rest is counted ("… and 12 more"). The
#: JSON payload (generic webhooks) and the alert history always carry every alert.
MAX_LINES = 20


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
    FRESHNESS_SLO = "freshness_slo"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Unit(StrEnum):
    """How a condition's value and threshold read in a message."""

    NUMBER = "number"
    SECONDS = "seconds"  # humanised: "45 s", "2 h 5 min"; inf: "never"
    RATIO = "ratio"  # "57.1%"
    BPS = "bps"
    FLAG = "flag"  # up/down rules: the numbers say nothing the text does not


def human_duration(seconds: float | None) -> str:
    """``2 h 5 min``, ``3 min 20 s``, ``45 s``, ``0.25 s``; ``never`` for inf (a pair that
    never had a signal); ``-`` for None."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if not math.isfinite(seconds):
        return "never"
    sign, s = ("-" if seconds < 0 else ""), abs(float(seconds))
    if s < 59.5:
        text = f"{s:.3g} s"
    elif (whole := round(s)) < 3600:
        m, sec = divmod(whole, 60)
        text = f"{m} min {sec} s" if sec else f"{m} min"
    elif (minutes := round(s / 60)) < 1440:
        h, m = divmod(minutes, 60)
        text = f"{h} h {m} min" if m else f"{h} h"
    else:
        d, h = divmod(round(s / 3600), 24)
        text = f"{d} d {h} h" if h else f"{d} d"
    return sign + text


def format_value(value: float | None, unit: Unit | str = Unit.NUMBER) -> str:
    """A condition's number as a person reads it (never ``inf`` or ``nan``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == Unit.SECONDS:
        return human_duration(value)
    if not math.isfinite(value):
        return "never" if value > 0 else "-"
    if unit == Unit.RATIO:
        return f"{value:.1%}"
    if unit == Unit.BPS:
        return f"{value:.1f} bps"
    return f"{value:.6g}"


def _clock(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _since(start: datetime, end: datetime) -> str:
    return human_duration((end - start).total_seconds())


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
    unit: Unit = Unit.NUMBER

    @property
    def key(self) -> str:
        """Dedupe key: the same rule on the same subject is one alert."""
        return "|".join([str(self.rule), self.strategy_id or "-", self.pair or "-",
                         self.subject or "-"])

    @property
    def where(self) -> str:
        return " ".join(p for p in (self.strategy_id, self.pair, self.subject) if p)

    def numbers(self) -> str:
        """``value 2 h 5 min, limit 3 min`` (empty for up/down rules)."""
        if self.unit == Unit.FLAG or (self.value is None and self.threshold is None):
            return ""
        return (f"value {format_value(self.value, self.unit)}, "
                f"limit {format_value(self.threshold, self.unit)}")


@dataclass(frozen=True)
class Alert:
    """A condition that started firing, re-fired after the cooldown, or cleared."""

    condition: Condition
    status: Status
    first_seen: datetime
    repeat: int = 0  # how many times it was sent before while firing
    resolved_at: datetime | None = None

    @property
    def title(self) -> str:
        return f"[{self.status.upper()}] {self.condition.rule} {self.condition.where}".rstrip()

    def line(self) -> str:
        """One line of a grouped message."""
        c = self.condition
        head = f"{c.rule} {c.where}".rstrip()
        if self.status is Status.RESOLVED:
            end = self.resolved_at or c.time
            return (f"{head}: resolved after {_since(self.first_seen, end)}"
                    f" (firing since {_clock(self.first_seen)})")
        numbers = c.numbers()
        again = f"; firing for {_since(self.first_seen, c.time)}" if self.repeat else ""
        return f"{head} [{c.severity}]: {c.detail}" + (f" ({numbers})" if numbers else "") + again

    def message(self) -> str:
        """The alert on its own: title, what, numbers, when."""
        c = self.condition
        lines = [self.title, c.detail]
        numbers = c.numbers()
        when = f"at {_clock(c.time)}, severity {c.severity}"
        lines.append(f"{numbers}; {when}" if numbers else when)
        if self.status is Status.RESOLVED:
            end = self.resolved_at or c.time
            lines.append(f"resolved after {_since(self.first_seen, end)}"
                         f" (firing since {_clock(self.first_seen)})")
        elif self.repeat:
            lines.append(f"still firing since {_clock(self.first_seen)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        c = asdict(self.condition)
        c["rule"] = str(self.condition.rule)
        c["unit"] = str(self.condition.unit)
        c["time"] = self.condition.time.isoformat()
        for name in ("value", "threshold"):  # JSON has no inf/NaN ("never seen" is inf)
            if c[name] is not None and not math.isfinite(c[name]):
                c[name] = None
        c["value_text"] = format_value(self.condition.value, self.condition.unit)
        c["threshold_text"] = format_value(self.condition.threshold, self.condition.unit)
        return {"status": str(self.status), "title": self.title, "key": self.condition.key,
                "first_seen": self.first_seen.isoformat(), "repeat": self.repeat,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None, **c}


def _by_importance(alerts: Iterable[Alert]) -> list[Alert]:
    """Critical first, then by rule and subject."""
    return sorted(alerts, key=lambda a: (a.condition.severity != "critical",
                                         str(a.condition.rule), a.condition.where))


@dataclass(frozen=True)
class Notification:
    """Everything one evaluation sends: the alerts that fired, re-fired or resolved.

    Each channel receives one notification per cycle (one POST, one email), not
    one per alert. ``still_firing``: alerts notified before that keep firing
    without being repeated this time (cooldown), so a message that lists only
    resolutions does not read as "all clear".
    """

    time: datetime
    alerts: tuple[Alert, ...]
    still_firing: int = 0
    source: str = "signal-bridge"

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status is Status.FIRING]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status is Status.RESOLVED]

    @property
    def title(self) -> str:
        """One alert: its own title. Several: counts and the rules involved."""
        if len(self.alerts) == 1:
            return self.alerts[0].title
        counts = ", ".join(f"{s.upper()} {n}" for s in (Status.FIRING, Status.RESOLVED)
                           if (n := sum(a.status is s for a in self.alerts)))
        rules = Counter(str(a.condition.rule) for a in _by_importance(self.alerts))
        named = ", ".join(f"{r} x{n}" if n > 1 else r for r, n in rules.items())
        return f"[{counts}] {self.source}: {named}"

    def message(self) -> str:
        if len(self.alerts) == 1 and not self.still_firing:
            return self.alerts[0].message()
        lines = [self.title, f"at {_clock(self.time)}"]
        for status, items in ((Status.FIRING, self.firing), (Status.RESOLVED, self.resolved)):
            if not items:
                continue
            lines += ["", f"{status.upper()} ({len(items)})"]
            shown = _by_importance(items)
            lines += [f"- {a.line()}" for a in shown[:MAX_LINES]]
            if len(shown) > MAX_LINES:
                lines.append(f"- … and {len(shown) - MAX_LINES} more")
        if self.still_firing:
            lines += ["", f"still firing, notified before: {self.still_firing}"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "time": self.time.isoformat(),
                "firing": len(self.firing), "resolved": len(self.resolved),
                "still_firing": self.still_firing,
                "alerts": [a.as_dict() for a in self.alerts]}
