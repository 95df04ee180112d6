"""The ``research`` CLI on a Dask cluster: the same report, signals and frames as in process.

``--workers 2`` starts its own LocalCluster; ``--scheduler`` uses a LocalCluster
this module starts (a running cluster, as ``dask scheduler`` + ``dask worker``
would be); an address with no scheduler fails fast with one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster
from pipeline_data import config_dict

from research.cli import EXIT_CLUSTER, EXIT_INPUT, EXIT_OK, main
from research.factors import cluster as dask_cluster
from research.pipeline import REPORT_FILES
from signal_export.contract import SIGNALS_COLLECTION


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a running 2-worker cluster (single-threaded worker processes)."""
    environ = dict(os.environ)  # Dask's Nanny writes its worker settings into os.environ
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=":0") as cluster:
        os.environ.clear()
        os.environ.update(environ)  # later tests' subprocesses get this process's environment
        yield cluster.scheduler_address


def _config(tmp_path: Path) -> Path:
    data = config_dict(universe=["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT"],
                       factors=["rsi", {"name": "sma", "params": {"period": 20}}, "macd", "atr"],
                       cross_section=["rank"])
    data["report"] = {"output_dir": str(tmp_path / "unused")}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _mongo_args(mongo_uri: str, db) -> list[str]:
    return ["--mongo-uri", mongo_uri, "--db", db.name, "--market-db", db.name,
            "--env-file", "/nonexistent/.env", "--quiet"]


def _malloc_env() -> tuple:
    return tuple(os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))


def _factor_tasks(dask_worker) -> set[str]:
    """Keys of the factor tasks a worker has seen (its transition log)."""
    return {str(e[0]) for e in dask_worker.state.log if str(e[0]).startswith("factor_values")}


def test_pipeline_with_two_workers_reports_and_exports_what_the_default_does(
        mongo_uri, mongo_db, tmp_path, capsys, monkeypatch):
    config = _config(tmp_path)
    used: list[tuple] = []  # (workers, their malloc settings) of each cluster used
    real = dask_cluster.cluster_factor_values

    def spy(client, *args, **kwargs):
        used.append((len(client.nthreads()), set(client.run(_malloc_env).values())))
        return real(client, *args, **kwargs)

    monkeypatch.setattr(dask_cluster, "cluster_factor_values", spy)
    args = ["pipeline", str(config), *_mongo_args(mongo_uri, mongo_db)]
    assert main([*args, "--output-dir", str(tmp_path / "local")]) == EXIT_OK
    stored = mongo_db[SIGNALS_COLLECTION].count_documents({"strategy_id": "pipe_test"})
    assert stored > 0 and f"inserted={stored}" in capsys.readouterr().out
    assert main([*args, "--workers", "2", "--output-dir", str(tmp_path / "dask")]) == EXIT_OK
    # the same signals: the export finds every one stored already, unchanged
    assert f"inserted=0 updated=0 unchanged={stored}" in capsys.readouterr().out
    # the default run stayed in process; --workers 2 had two workers, started with the
    # glibc settings of WORKER_MALLOC, not Dask's (those make the factor code 2x slower)
    assert used == [(2, {tuple(dask_cluster.WORKER_MALLOC.values())})]
    for name in REPORT_FILES:  # every report file byte for byte (run_info.json aside)
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_factors_command_on_a_running_cluster_writes_the_same_frame(scheduler, tmp_path):
    base = ["factors", "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT,BNB/USDT", "--start",
            "2024-01-01", "--end", "2024-01-03T23:59Z", "--timeframe", "1m", "--factors",
            "rsi,macd,adx,sma:period=50", "--cross-section", "rank,zscore", "--keep-ohlcv",
            "--synthetic-seed", "5", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "local.parquet")]) == EXIT_OK
    with Client(scheduler) as watcher:
        before = watcher.run(_factor_tasks)
        assert main([*base, "--scheduler", scheduler, "--out",
                     str(tmp_path / "dask.parquet")]) == EXIT_OK
        after = watcher.run(_factor_tasks)
    assert all(after[w] - before[w] for w in after), "both workers computed symbols"
    local = pd.read_parquet(tmp_path / "local.parquet")
    assert len(local) == 4 * 3 * 1440
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask.parquet"), local,
                                  check_exact=True)


def test_signals_command_on_a_running_cluster_writes_the_same_signals(scheduler, tmp_path):
    config = _config(tmp_path)
    base = ["signals", "--config", str(config), "--quiet", "--env-file", "/nonexistent/.env"]
    assert main([*base, "--out", str(tmp_path / "local.parquet")]) == EXIT_OK
    assert main([*base, "--scheduler", scheduler, "--out",
                 str(tmp_path / "dask.parquet")]) == EXIT_OK
    local = pd.read_parquet(tmp_path / "local.parquet")
    assert len(local) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask.parquet"), local,
                                  check_exact=True)


def test_an_address_with_no_scheduler_is_one_line_and_exit_5(tmp_path, capsys):
    out = tmp_path / "f.parquet"
    code = main(["factors", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end",
                 "2024-01-31", "--factors", "rsi", "--synthetic-seed", "3", "--quiet",
                 "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)])
    assert code == EXIT_CLUSTER
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Dask scheduler tcp://127.0.0.1:1 did not answer within 5 s")
    assert "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--workers", "0"], "error: workers must be an integer >= 1, got 0"),
    (["--scheduler", "localhost"], "error: scheduler 'localhost': missing port number"),
    (["--latest", "--workers", "2"], "error: --workers/--scheduler do not apply to --latest"),
])
def test_bad_cluster_options_are_exit_2(tmp_path, capsys, extra, message):
    code = main(["pipeline", str(_config(tmp_path)), "--no-export", "--quiet",
                 "--env-file", "/nonexistent/.env", *extra])
    assert code == EXIT_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err, err


def test_workers_and_scheduler_together_are_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["pipeline", str(_config(tmp_path)), "--workers", "2", "--scheduler",
              "tcp://127.0.0.1:8786"])
    assert info.value.code == EXIT_INPUT
    assert "not allowed with argument" in capsys.readouterr().err
