"""The Freqtrade configuration overlay that points ccxt at the stand-in.

Freqtrade has no offline markets mode; with this overlay merged into a config
(``--config base.json --config overlay.json``) an unmodified Freqtrade talks
to the local stand-in instead of api.binance.com (see ``NOTES.md``).
"""

from __future__ import annotations

from typing import Any

#: ccxt Binance URL groups that must not reach the internet.
API_GROUPS = ("public", "private", "v1", "sapi", "sapiV2", "sapiV3", "sapiV4",
              "fapiPublic", "fapiPublicV2", "fapiPublicV3", "fapiPrivate", "fapiPrivateV2",
              "fapiPrivateV3", "fapiData", "dapiPublic", "dapiPrivate", "dapiPrivateV2",
              "dapiData", "eapiPublic", "eapiPrivate", "papi", "papiV2")

_PATHS = {"public": "api/v3", "private": "api/v3", "v1": "api/v1"}


def ccxt_urls(url: str) -> dict[str, str]:
    """ccxt ``urls.api`` entries for every Binance API group, rooted at ``url``."""
    root = url.rstrip("/")
    urls = {}
    for group in API_GROUPS:
        if group in _PATHS:
            urls[group] = f"{root}/{_PATHS[group]}"
        else:  # e.g. sapiV2 -> /sapi/v2, fapiPublic -> /fapi/v1, dapiData -> /futures/data
            prefix = group[:4]
            version = group[-1] if group[-1].isdigit() else "1"
            urls[group] = (f"{root}/futures/data" if group.endswith("Data")
                           else f"{root}/{prefix}/v{version}")
    return urls


def freqtrade_exchange_overlay(url: str, futures: bool = False) -> dict[str, Any]:
    """Config fragment: Binance spot via the stand-in at ``url``, no keys, no websockets.

    ``futures=True``: the USD-M perpetuals instead (``trading_mode: futures``,
    ``margin_mode: isolated``, pairs ``BTC/USDT:USDT``); ccxt then loads ``/fapi`` markets.
    """
    types = ["linear"] if futures else ["spot"]
    mode = {"trading_mode": "futures", "margin_mode": "isolated"} if futures else {}
    return {
        **mode,
        "exchange": {
            "name": "binance",
            "key": "",
            "secret": "",
            "enable_ws": False,
            "ccxt_config": {
                "enableRateLimit": True,
                "urls": {"api": ccxt_urls(url)},
                "options": {"fetchMarkets": {"types": types}},
            },
            # Freqtrade also applies ccxt_config to its async client; repeated here so the
            # overlay stays explicit when someone overrides ccxt_config alone.
            "ccxt_async_config": {
                "enableRateLimit": True,
                "urls": {"api": ccxt_urls(url)},
                "options": {"fetchMarkets": {"types": types}},
            },
        }
    }
