"""Freqtrade's REST API as the monitor reads it: a thin, strict wrapper of ``freqtrade_client``.

``FtRestClient`` returns ``None`` on a connection error and the error body on
HTTP errors; this wrapper turns both into :class:`FreqtradeApiError` naming
the bot and endpoint (never the password), and pages through ``/trades``. The
password comes from the environment variable named in the bot's config (or its
``_FILE`` form, a mounted secret file). Not
the checks over the data (:mod:`.execution`, :mod:`.reconcile`).
"""

from __future__ import annotations

from typing import Any

from freqtrade_client import FtRestClient

from signal_export.errors import BridgeError
from signal_export.logs import register_secret
from signal_export.security.secrets import env_value

TRADES_PAGE = 500


class FreqtradeApiError(BridgeError, RuntimeError):
    """The bot's REST API did not answer usefully."""


class FreqtradeApi:
    """Read-only calls the monitor needs, for one bot."""

    def __init__(self, name: str, url: str, username: str | None = None,
                 password: str | None = None, *, password_env: str | None = None,
                 timeout_s: float = 5.0) -> None:
        if password_env:
            password = env_value(password_env) or password
        register_secret(password)
        self.name = name
        self.url = url.rstrip("/")
        self._client = FtRestClient(self.url, username, password, timeout=timeout_s)

    def _checked(self, endpoint: str, reply: Any) -> Any:
        if reply is None:
            raise FreqtradeApiError(f"bot {self.name}: {endpoint} unreachable at {self.url}")
        if isinstance(reply, dict) and "detail" in reply and len(reply) == 1:
            raise FreqtradeApiError(f"bot {self.name}: {endpoint}: {reply['detail']}")
        return reply

    def _get(self, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        try:
            reply = self._client._get(endpoint, params=params)
        except ValueError as exc:  # not JSON (e.g. an HTML error page)
            raise FreqtradeApiError(f"bot {self.name}: {endpoint}: bad reply ({exc})") from None
        except Exception as exc:  # requests' timeouts and friends
            raise FreqtradeApiError(f"bot {self.name}: {endpoint}: {type(exc).__name__}"
                                    ) from None
        return self._checked(endpoint, reply)

    def ping(self) -> bool:
        try:
            return self._get("ping").get("status") == "pong"
        except FreqtradeApiError:
            return False

    def show_config(self) -> dict[str, Any]:
        """The bot's running configuration (``/show_config``: no secrets, Freqtrade strips them)."""
        return dict(self._get("show_config"))

    def state(self) -> str:
        """``running`` / ``stopped`` / ... from ``/show_config``."""
        return str(self.show_config().get("state", "unknown"))

    def locks(self) -> list[dict[str, Any]]:
        """Pair locks, active and expired (``/locks``)."""
        return list(self._get("locks").get("locks") or [])

    def open_trades(self) -> list[dict[str, Any]]:
        return list(self._get("status"))

    def trades(self) -> list[dict[str, Any]]:
        """Closed trades (``/trades`` paged; Freqtrade lists open ones only in ``/status``:
        :meth:`open_trades`)."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._get("trades", {"limit": TRADES_PAGE, "offset": offset} if offset
                             else {"limit": TRADES_PAGE})
            rows = page.get("trades") or []
            out.extend(rows)
            offset += len(rows)
            if not rows or offset >= int(page.get("total_trades", offset)):
                return out

    def balance(self) -> dict[str, Any]:
        return dict(self._get("balance"))

    def logs(self, limit: int = 200) -> dict[str, Any]:
        return dict(self._get("logs", {"limit": limit}))
