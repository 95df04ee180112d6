"""Factors on a Dask cluster (a real LocalCluster, 2 worker processes) equal the in-process ones."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from factor_data import ohlcv, with_crypto_columns

from research.factors import compute_factors, list_factors
from research.factors.cluster import (
    ClusterConfigError,
    ClusterError,
    check_versions,
    open_cluster,
    symbol_chunks,
    value_versions,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """One LocalCluster (2 single-threaded worker processes) for the module: a running cluster."""
    environ = dict(os.environ)  # Dask's Nanny writes its worker settings into os.environ
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=":0") as local:
        os.environ.clear()
        os.environ.update(environ)  # later tests' subprocesses get this process's environment
        yield local


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    """The product's way in: open_cluster(scheduler=<the cluster's address>)."""
    with open_cluster(scheduler=cluster.scheduler_address) as c:
        yield c


def _market() -> pd.DataFrame:
    """Seven symbols of different lengths (one shorter than most lookbacks), rows shuffled."""
    lengths = [1500, 40, 2200, 900, 1800, 5, 1200]
    parts = [with_crypto_columns(ohlcv(n, f"BINANCE:S{i}USDT", seed=i, price=10.0 + i), i)
             for i, n in enumerate(lengths)]
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_every_factor_on_two_workers_equals_the_single_process_frame(client):
    market = _market()
    requests = [*sorted(list_factors()), {"name": "rsi", "params": {"period": 7}}]
    kwargs = {"cross_section": ["rank", "zscore"], "keep": ["close", "volume"]}
    local = compute_factors(market, requests, **kwargs)
    remote = compute_factors(market, requests, cluster=client, **kwargs)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert remote.attrs == local.attrs
    assert remote.shape[0] == len(market) and remote["symbol"].nunique() == 7
    assert np.isfinite(remote["rsi_7"].to_numpy()).sum() > 0  # really computed, not all NaN


def _factor_tasks(dask_worker) -> set[str]:
    """Keys of the factor tasks this worker has seen (its transition log)."""
    return {str(e[0]) for e in dask_worker.state.log if str(e[0]).startswith("factor_values")}


def test_work_is_spread_over_both_workers(client):
    before = client.run(_factor_tasks)
    frame = compute_factors(_market(), ["rsi", "macd"], cluster=client)
    after = client.run(_factor_tasks)
    new = {w: after[w] - before.get(w, set()) for w in after}
    assert len(new) == 2 and all(new.values()), new  # both workers computed symbols
    assert frame["symbol"].nunique() == 7


def test_symbol_chunks_keep_symbols_whole_and_cover_every_row():
    starts = np.array([0, 10, 15, 40, 41])
    ends = np.array([10, 15, 40, 41, 60])
    chunks = symbol_chunks(starts, ends, target_rows=12)
    assert chunks == [slice(0, 2), slice(2, 3), slice(3, 5)]
    covered = np.concatenate([np.arange(starts[c][0], ends[c][-1]) for c in chunks])
    assert np.array_equal(covered, np.arange(60))
    assert symbol_chunks(starts, ends, target_rows=10**9) == [slice(0, 5)]
    assert symbol_chunks(starts[:0], ends[:0], target_rows=5) == []


def test_an_empty_frame_gives_the_same_empty_frame(client):
    empty = ohlcv(10, "BINANCE:S0USDT", seed=1).iloc[:0]
    pd.testing.assert_frame_equal(compute_factors(empty, ["rsi"], cluster=client),
                                  compute_factors(empty, ["rsi"]), check_exact=True)


def test_workers_with_other_library_versions_are_refused(client):
    check_versions(client)  # the real workers: same environment, accepted
    other = {**value_versions(), "numpy": "0.0.1"}
    with pytest.raises(ClusterError, match=r"numpy .* \(here 0\.0\.1\).*requirements\.lock"):
        check_versions(client, here=other)


def test_neither_option_means_in_process():
    with open_cluster() as c:
        assert c is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, "workers or scheduler, not both"),
    ({"scheduler": "no-port-here"}, "scheduler 'no-port-here': missing port number"),
    ({"scheduler": "ftp://h:1"}, "unknown address scheme 'ftp'"),
])
def test_bad_choices_are_one_line_config_errors(kwargs, message):
    with pytest.raises(ClusterConfigError, match=message) as info, open_cluster(**kwargs):
        pass
    assert "\n" not in str(info.value)


def test_an_unreachable_scheduler_fails_fast_naming_the_address():
    dead = "tcp://127.0.0.1:1"
    with pytest.raises(ClusterError, match=r"tcp://127\.0\.0\.1:1 did not answer within 0\.5 s"), \
            open_cluster(scheduler=dead, timeout=0.5):
        pass


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    before = dict(os.environ)
    with open_cluster(workers=1) as c:
        assert c is not None and len(c.nthreads()) == 1
        assert dict(os.environ) == before  # Dask's Nanny wrote its settings; they are gone
    assert dict(os.environ) == before
