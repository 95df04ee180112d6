"""``signal-bridge``: get the strategy into Freqtrade, and run Freqtrade with file secrets.

``signal-bridge install-strategy --userdir user_data`` copies the strategy the
package ships (``ExternalSignalStrategy.py``) into ``user_data/strategies/``,
where ``freqtrade trade --userdir user_data --strategy ExternalSignalStrategy``
finds it. Re-running it is a no-op when the file is current; a changed file
there is replaced only with ``--force``. ``signal-bridge strategy-path``
prints the directory of the packaged file (usable as ``--strategy-path``).
``signal-bridge hyperopt-params FILE`` prints the decision settings of a
``freqtrade hyperopt`` result file (``<strategy>.json`` next to the strategy)
as an ``ext_signals`` block, for the research pipeline's config (and the bot's),
so research decides with the hyperopted values too.

``signal-bridge freqtrade ARGS...`` runs ``freqtrade ARGS...`` in this process
after turning every ``FREQTRADE__<KEY>_FILE=/path`` variable into
``FREQTRADE__<KEY>`` with the file's content: Freqtrade reads its API-server
password, JWT secret or exchange key only from ``FREQTRADE__*`` values, and
this is how a container passes them as mounted secret files (the strategy
itself reads ``EXT_SIG_MONGO_URI_FILE``). Not for: the strategy's rules
(:mod:`signal_export.consumer`).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from signal_export.errors import BridgeError, ConfigError
from signal_export.security.secrets import SecretError, env_value
from signal_export.strategies import STRATEGY_FILE, STRATEGY_NAME

FREQTRADE_PREFIX = "FREQTRADE__"


class InstallError(BridgeError, RuntimeError):
    """The strategy cannot be installed there; the message says why."""


def install_strategy(userdir: str | Path, *, force: bool = False) -> tuple[Path, str]:
    """Copy the packaged strategy into ``<userdir>/strategies``; ``(path, what happened)``.

    ``what`` is ``"installed"``, ``"updated"`` (``force`` replaced a different file) or
    ``"unchanged"``. :class:`InstallError` when a different file is there and not ``force``.
    """
    target_dir = Path(userdir) / "strategies"
    target = target_dir / STRATEGY_FILE.name
    if target.exists():
        if filecmp.cmp(STRATEGY_FILE, target, shallow=False):
            return target, "unchanged"
        if not force:
            raise InstallError(f"{target} exists and differs from the packaged strategy; "
                               "re-run with --force to replace it")
        what = "updated"
    else:
        what = "installed"
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STRATEGY_FILE, target)
    return target, what


def resolve_file_variables(environ: MutableMapping[str, str],
                           prefix: str = FREQTRADE_PREFIX) -> list[str]:
    """Replace each ``<prefix>X_FILE`` in ``environ`` by ``<prefix>X`` = the file's content.

    Returns the names set. The ``_FILE`` variables are removed (Freqtrade would read
    them as config keys). :class:`SecretError` for an unreadable/empty file or when
    both forms are set.
    """
    resolved = []
    for file_var in sorted(k for k in environ if k.startswith(prefix) and k.endswith("_FILE")):
        name = file_var.removesuffix("_FILE")
        value = env_value(name, environ=environ)
        del environ[file_var]
        if value is not None:
            environ[name] = value
            resolved.append(name)
    return resolved


def run_freqtrade(args: Sequence[str]) -> int:
    """``freqtrade ARGS`` in this process, with ``FREQTRADE__*_FILE`` secrets resolved."""
    try:
        resolve_file_variables(os.environ)
    except SecretError as exc:
        print(f"signal-bridge freqtrade: {exc}", file=sys.stderr)
        return 2
    from freqtrade.main import main as freqtrade_main

    try:
        freqtrade_main(list(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _print_hyperopt_params(path: Path, fmt: str) -> int:
    from signal_export.consumer.hyperopt import decision_params

    try:
        params = decision_params(path)
    except ConfigError as exc:
        print(f"signal-bridge hyperopt-params: {exc}", file=sys.stderr)
        return 2
    if not params:
        print(f"signal-bridge hyperopt-params: {path} holds no decision parameters",
              file=sys.stderr)
        return 2
    if fmt == "json":
        print(json.dumps({"ext_signals": params}, indent=4))
    else:
        print(f"ext_signals:   # from {path}")
        for key, value in params.items():
            print(f"  {key}: {json.dumps(value)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signal-bridge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install-strategy",
                             help=f"copy {STRATEGY_NAME}.py into USERDIR/strategies")
    install.add_argument("--userdir", required=True, type=Path,
                         help="Freqtrade user data directory (as for freqtrade --userdir)")
    install.add_argument("--force", action="store_true",
                         help="replace a different file of the same name")
    sub.add_parser("strategy-path", help="print the directory of the packaged strategy file")
    params = sub.add_parser(
        "hyperopt-params", help="print a freqtrade hyperopt result file's decision settings "
                                "as an ext_signals block (pipeline YAML or bot JSON)")
    params.add_argument("file", type=Path,
                        help="the result file, e.g. user_data/strategies/ExternalSignalStrategy"
                             ".json")
    params.add_argument("--format", choices=("yaml", "json"), default="yaml",
                        help="yaml: for a research pipeline config (default); json: for a "
                             "Freqtrade config")
    sub.add_parser("freqtrade", help="run freqtrade ARGS... with FREQTRADE__*_FILE secrets "
                                     "resolved (all further arguments go to freqtrade)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["freqtrade"]:  # everything after it belongs to freqtrade, flags included
        return run_freqtrade(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "strategy-path":
        print(STRATEGY_FILE.parent)
        return 0
    if args.command == "hyperopt-params":
        return _print_hyperopt_params(args.file, args.format)
    try:
        path, what = install_strategy(args.userdir, force=args.force)
    except (InstallError, OSError) as exc:
        print(f"signal-bridge install-strategy: {exc}", file=sys.stderr)
        return 1
    print(f"{what}: {path}")
    print(f"run: freqtrade trade --userdir {args.userdir} --strategy {STRATEGY_NAME} "
          "--config <your config with an ext_signals block>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
