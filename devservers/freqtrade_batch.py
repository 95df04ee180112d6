"""Run many ``freqtrade`` commands in one Python process: one start-up, many real backtests.

``python -m devservers.freqtrade_batch MANIFEST.json`` reads ``{"jobs": [{"argv": [...]}],
"out": "path"}`` (give each argv its own ``--logfile``), calls Freqtrade's own CLI entry point
(``freqtrade.main.main``, what the ``freqtrade`` script runs) once per job with that
argv, and writes each job's exit code to ``out``. Importing Freqtrade, ccxt and pandas
costs seconds per process; property tests that run dozens of backtests share it.
Each job still parses its own config, loads markets from the stand-in, loads the
strategy file and exports its trades, exactly as the CLI does. A development tool.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


class _ConfigErrors(logging.Handler):
    """Counts Freqtrade's "Configuration error" log records: ``freqtrade.main`` logs them
    and then exits with code 0 (``sys.exit(None)``), which must not pass for success."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("Configuration error")


def _run_one(argv: list[str]) -> int:
    from freqtrade.main import main

    errors = _ConfigErrors()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else int(exc.code)
    finally:
        root.removeHandler(errors)
    return 2 if code == 0 and errors.count else code


def main(manifest_path: str) -> int:
    manifest = json.loads(Path(manifest_path).read_text())
    codes = [_run_one(job["argv"]) for job in manifest["jobs"]]
    Path(manifest["out"]).write_text(json.dumps(codes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
