"""The one-process Freqtrade batch runner reports each job's outcome, failures included.

Freqtrade's CLI logs "Configuration error: ..." and then exits 0; the batch must turn that
into a failing code, or a property test would read a missing backtest as an empty one.
"""

from __future__ import annotations

import json

import pytest

from devservers.freqtrade_harness import freqtrade_env, run_backtests_in_one_process

pytestmark = pytest.mark.freqtrade


def test_a_configuration_error_is_a_failed_job_and_others_still_run(tmp_path):
    userdir = tmp_path / "user"
    userdir.mkdir()
    bad = tmp_path / "bad.json"  # no pairs for StaticPairList: Freqtrade's ConfigurationError
    bad.write_text(json.dumps({"max_open_trades": 1, "stake_currency": "USDT",
                               "stake_amount": 10, "dry_run": True,
                               "exchange": {"name": "binance", "pair_whitelist": []}}))
    jobs = [["backtesting", "--config", str(bad), "--userdir", str(userdir)], ["--version"]]
    assert run_backtests_in_one_process(jobs, tmp_path, freqtrade_env(), timeout=300) == [2, 0]
