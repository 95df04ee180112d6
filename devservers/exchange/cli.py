"""``python -m devservers.exchange`` (from the repository root): run the stand-in.

Prints the base URL as the first line of stdout (so a parent process can read
it), then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from devservers.exchange.server import ExchangeStandIn
from research.data.synthetic import DEFAULT_SYMBOLS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devservers.exchange", description=__doc__)
    parser.add_argument("--pairs", default=",".join(DEFAULT_SYMBOLS),
                        help="comma list, BTC/USDT or BINANCE:BTCUSDT form")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--gap-rate", type=float, default=0.0,
                        help="expected runs of missing 1m bars per symbol per day")
    parser.add_argument("--now", default=None,
                        help="freeze the clock at this time (ISO 8601; no offset means UTC)")
    parser.add_argument("--rate-limit", type=int, default=None,
                        help="requests per --rate-window seconds before HTTP 429")
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--print-overlay", action="store_true",
                        help="print the Freqtrade config overlay (JSON) after the URL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from research.data.synthetic import SyntheticMarket

    market = SyntheticMarket(seed=args.seed, symbols=tuple(args.pairs.split(",")),
                             gap_rate=args.gap_rate)
    now = None
    if args.now:
        import pandas as pd

        now = pd.Timestamp(args.now)
        now = now.tz_localize("UTC") if now.tzinfo is None else now
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with ExchangeStandIn(market=market, port=args.port, now=now, rate_limit=args.rate_limit,
                         rate_window_s=args.rate_window) as server:
        print(server.url, flush=True)
        if args.print_overlay:
            print(json.dumps(server.overlay()), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
