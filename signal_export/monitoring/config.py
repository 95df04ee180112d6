"""The monitor's configuration file (YAML, pydantic, unknown keys are errors naming the key).

What to watch (strategies and their timeframe; Freqtrade bots by REST URL),
thresholds of each alert rule, alert channels and cooldown, the metrics port
and the poll interval. Secrets are never in the file: bot passwords, webhook
URLs and SMTP passwords are named by environment variable. Not the checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signal_export.contract import STRATEGY_ID_RE, timeframe_seconds
from signal_export.errors import ConfigError


class MonitorConfigError(ConfigError):
    """A monitor config that cannot be used; the message names the file and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchedStrategy(_Model):
    strategy_id: str
    timeframe: str
    #: Pairs expected to have signals; ``None`` = every pair seen in the store.
    pairs: list[str] | None = None
    #: The producer writes a signal for every pair every bar (lag rules apply per pair).
    every_bar: bool = True
    #: Freshness SLO: the p95 of ``available_at - bar close`` may not exceed this; default
    #: timeframe / 2.
    freshness_budget_seconds: float | None = Field(default=None, gt=0)

    @field_validator("strategy_id")
    @classmethod
    def _sid(cls, v: str) -> str:
        if not STRATEGY_ID_RE.match(v):
            raise ValueError(f"strategy_id {v!r} is not valid")
        return v

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        timeframe_seconds(v)
        return v


class BotConfig(_Model):
    name: str
    url: str
    username: str | None = None
    password_env: str | None = None
    #: Quote currency whose balance is checked.
    stake_currency: str = "USDT"
    #: The strategy's Prometheus endpoint (``ext_signals.metrics_port`` of the bot), e.g.
    #: ``http://127.0.0.1:9109/metrics``: its unusable-signal counts per strategy id/reason.
    metrics_url: str | None = None


class Thresholds(_Model):
    missing_bars: int = Field(default=3, ge=1)
    #: Export budget after a bar close; default timeframe / 2.
    lag_budget_seconds: float | None = Field(default=None, gt=0)
    consecutive_rejections: int = Field(default=3, ge=1)
    slippage_bps: float = Field(default=50.0, ge=0)
    min_balance: float = Field(default=0.0, ge=0)
    rate_limit_errors: int = Field(default=1, ge=1)
    #: Reconciliation: an acted signal later than this many bars after its fill bar is "late".
    late_bars: int = Field(default=1, ge=0)
    exporter_min_success_rate: float = Field(default=0.95, ge=0, le=1)
    #: An export audit record still ``running`` this long after it started: the exporter
    #: died (kill -9, lost host) without finishing it.
    export_running_max_seconds: float = Field(default=1800.0, gt=0)
    #: Freshness SLO window: signals whose bar closed in the last this many bars (of the
    #: strategy's timeframe), and the quantile compared with each strategy's budget.
    freshness_window_bars: int = Field(default=60, ge=1)
    freshness_quantile: float = Field(default=0.95, gt=0, le=1)


class AlertSettings(_Model):
    cooldown_seconds: float = Field(default=900.0, ge=0)
    history_collection: str | None = "monitor_alerts"


class WebhookConfig(_Model):
    kind: Literal["webhook"] = "webhook"
    name: str = "webhook"
    url: str | None = None
    url_env: str | None = None
    style: Literal["generic", "slack", "discord", "telegram"] = "generic"
    chat_id: str | None = None
    timeout_s: float = 5.0

    @field_validator("url")
    @classmethod
    def _no_inline_tokens(cls, v: str | None) -> str | None:
        if v and any(s in v for s in ("hooks.slack.com", "discord.com/api/webhooks",
                                      "api.telegram.org")):
            raise ValueError("webhook URLs with tokens belong in the environment: use url_env")
        return v

    @model_validator(mode="after")
    def _complete(self) -> WebhookConfig:
        if not (self.url or self.url_env):
            raise ValueError(f"webhook {self.name}: set url_env (or url)")
        if self.style == "telegram" and not self.chat_id:
            raise ValueError(f"webhook {self.name}: style telegram needs chat_id")
        return self


class EmailConfig(_Model):
    kind: Literal["email"] = "email"
    name: str = "email"
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    sender: str
    recipients: list[str] = Field(min_length=1)
    username: str | None = None
    password_env: str | None = None
    #: ``starttls`` / ``ssl`` (implicit TLS) / ``none`` (clear text: only when set so).
    #: Default: ``ssl`` on port 465, ``starttls`` on any other port.
    security: Literal["none", "starttls", "ssl"] | None = None
    #: CA bundle for a server certificate not signed by a system CA.
    ca_file: str | None = None
    timeout_s: float = 10.0

    @model_validator(mode="after")
    def _login_pair(self) -> EmailConfig:
        if bool(self.username) != bool(self.password_env):
            raise ValueError(f"email {self.name}: username and password_env go together")
        return self


ChannelConfig = Annotated[WebhookConfig | EmailConfig, Field(discriminator="kind")]


class MonitorConfig(_Model):
    strategies: list[WatchedStrategy] = Field(default_factory=list)
    bots: list[BotConfig] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    channels: list[ChannelConfig] = Field(default_factory=list)
    interval_seconds: float = Field(default=30.0, gt=0)
    metrics_port: int | None = 9108
    #: Address the metrics endpoint binds to (0.0.0.0 inside a container).
    metrics_address: str = "127.0.0.1"
    #: Write Freqtrade trades back into MongoDB each cycle.
    writeback: bool = True
    #: Scheduler runs collection (job counts, export failures, latency).
    scheduler_runs_collection: str = "scheduler_runs"
    #: How far back reconciliation and the exporter success rate look.
    lookback_hours: float = Field(default=24.0, gt=0)


def parse_monitor_config(data: Any, *, source: str = "monitor config") -> MonitorConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MonitorConfigError(f"{source}: expected a mapping at the top level")
    try:
        return MonitorConfig.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].replace(
                "Value error, ", "")
            parts.append(f"{where}: {msg}")
        raise MonitorConfigError(f"{source}: {'; '.join(parts)}") from None


def load_monitor_config(path: str | Path) -> MonitorConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MonitorConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise MonitorConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_monitor_config(data, source=str(path))
