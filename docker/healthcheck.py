"""Container health check: MongoDB reachable with the service's own URI, HTTP endpoint answers.

    python docker/healthcheck.py --mongo-env EXT_SIG_MONGO_URI --http http://127.0.0.1:9108/metrics

The URI comes from that variable or its ``_FILE`` form (a mounted secret file), read
like every entry point does. Exit 0 healthy, 1 not. Prints only a redacted reason
(never the URI's password).
Not for: monitoring (that is ``signal-monitor``); it only tells the orchestrator
whether to restart the container.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mongo-env", help="name of the env variable holding the MongoDB URI")
    p.add_argument("--http", help="URL that must answer 2xx")
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args(argv)
    try:
        if args.mongo_env:
            import pymongo

            from signal_export.security.secrets import env_value

            uri = env_value(args.mongo_env)
            if not uri:
                raise KeyError(args.mongo_env)
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(args.timeout * 1000))
            try:
                client.admin.command("ping")
            finally:
                client.close()
        if args.http:
            with urllib.request.urlopen(args.http, timeout=args.timeout) as response:  # noqa: S310
                if not 200 <= response.status < 300:
                    raise RuntimeError(f"HTTP {response.status}")
    except Exception as exc:  # any failure means unhealthy
        print(f"unhealthy: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
