"""Factor computation on a Dask cluster: Dask's own scheduler and workers, not ours.

:func:`open_cluster` gives a ``distributed.Client`` (or ``None``: compute in
this process, the default) either on a ``LocalCluster`` of ``workers`` worker
processes started here and closed on exit, or on a running cluster at
``scheduler`` (``dask scheduler`` / ``dask worker tcp://host:8786``).
:func:`cluster_factor_values` is what :func:`research.factors.compute_factors`
calls with such a client: the symbols are cut into chunks (whole symbols,
about :data:`MAX_TASK_ROWS` rows at most), each chunk's input columns are
scattered to a worker once, the worker runs the same
:func:`research.factors.registry.factor_values` the single-process path runs,
and the values come back into their rows. Every symbol is computed whole on
one worker with the same code, so the frame is identical to the in-process
one (bit for bit, given the same numpy / pandas / TA-Lib on the workers,
which :func:`open_cluster` checks). Workers get data by value; they never read
MongoDB. Results come straight from the workers (``direct_to_workers``), and
the LocalCluster's workers get glibc malloc settings that suit the factor code
(:data:`WORKER_MALLOC`). What it gains and costs: ``bench/bench_factors_dask.py``.
"""

from __future__ import annotations

import logging
import math
import os
import platform
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

from research.factors.registry import Bars, FactorSpec, factor_values
from signal_export.errors import BridgeError, ConfigError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

#: Seconds to wait for a scheduler to answer and for it to have a worker.
CONNECT_TIMEOUT_S = 5.0
#: Rows per task at most (whole symbols; a longer symbol is one task of its own).
MAX_TASK_ROWS = 1_000_000
#: Tasks per worker thread at least, when there are enough symbols (load balancing).
TASKS_PER_THREAD = 4
#: glibc settings of the LocalCluster workers (see _worker_malloc): arrays up to 32 MB from
#: the heap, which keeps up to 256 MB free before giving memory back.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "268435456"}
#: Packages whose versions decide the factor values bit for bit.
VALUE_PACKAGES = ("numpy", "pandas", "TA-Lib")


class ClusterError(BridgeError):
    """The Dask cluster cannot be reached or failed during the work; the message says which."""


class ClusterConfigError(ConfigError):
    """A bad ``workers`` / ``scheduler`` choice (both given, N < 1, malformed address)."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterConfigError(
            "workers/scheduler need Dask: pip install 'freqtrade-signal-bridge[cluster]' "
            "(dask and distributed)") from None
    return distributed


def value_versions() -> dict[str, str]:
    """Python and the versions of :data:`VALUE_PACKAGES` in this process (run on each worker)."""
    out = {"python": platform.python_version()}
    for name in VALUE_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def check_versions(client: Client, here: dict[str, str] | None = None) -> None:
    """Refuse workers whose numpy / pandas / TA-Lib / Python differ from ``here`` (this process).

    Different versions could change a value in the last bit, and the cluster
    path promises the single-process frame exactly.
    """
    here = here if here is not None else value_versions()
    for worker, theirs in client.run(value_versions).items():
        diff = [f"{k} {theirs.get(k)} (here {v})" for k, v in here.items() if theirs.get(k) != v]
        if diff:
            raise ClusterError(f"Dask worker {worker} runs {', '.join(diff)}: install the same "
                               "requirements.lock on every worker so results stay identical")


@contextmanager
def open_cluster(workers: int | None = None, scheduler: str | None = None, *,
                 timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Client | None]:
    """A Dask client for the factor work, or ``None`` (neither given: run in this process).

    ``workers``: start a ``LocalCluster`` of that many single-threaded worker
    processes on this machine (closed on exit). ``scheduler``: connect to a
    running scheduler (``tcp://host:8786``) within ``timeout`` seconds and wait
    as long for at least one worker; that cluster is left running. Data goes
    to and comes from the workers directly (``direct_to_workers``): through the
    scheduler, gathering 400 MB of factor values took 10x as long.
    """
    if workers is not None and scheduler is not None:
        raise ClusterConfigError("give workers or scheduler, not both")
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ClusterConfigError(f"workers must be an integer >= 1, got {workers!r}")
    dd = _distributed()
    with _dask_logs_follow_root():
        if workers is not None:
            # No dashboard; the scheduler's HTTP endpoint on a free port (8787 may be taken).
            try:
                with _worker_malloc():
                    cluster = dd.LocalCluster(n_workers=workers, threads_per_worker=1,
                                              processes=True, dashboard_address=None,
                                              scheduler_kwargs={"dashboard_address": ":0"})
            except Exception as exc:  # ports, process limits, memory: one line, exit 5
                raise ClusterError(f"could not start a LocalCluster of {workers} workers: "
                                   f"{type(exc).__name__}: {exc}") from None
            try:
                with dd.Client(cluster, direct_to_workers=True) as client:
                    yield client
            finally:
                cluster.close()
            return
        client = _connect(dd, str(scheduler), timeout)
        try:
            check_versions(client)
            yield client
        finally:
            client.close()


@contextmanager
def _worker_malloc() -> Iterator[None]:
    """Start workers with :data:`WORKER_MALLOC` instead of Dask's ``MALLOC_TRIM_THRESHOLD_=65536``.

    Dask's setting (nanny pre-spawn env) fixes glibc's mmap threshold at 128 KB,
    so every temporary array of a factor (4 MB for a 1m symbol-year) is a fresh
    mmap with its page faults: measured 2x the CPU time of the same code in
    this process (13,000 page faults a symbol-year instead of ~600). With heap
    allocations up to 32 MB it matches. Read when a process starts, so it goes
    into the spawn environment; the Nanny writes that into ``os.environ``,
    which is restored afterwards (this process's later subprocesses keep theirs).
    """
    import dask

    saved = dict(os.environ)
    for key in WORKER_MALLOC:
        os.environ.pop(key, None)  # the Nanny prefers a value already in os.environ
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v
                              for k, v in WORKER_MALLOC.items()}):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _dask_logs_follow_root() -> Iterator[None]:
    """Dask's own config sets its loggers to INFO; here they follow this process's level."""
    logger = logging.getLogger("distributed")
    old = logger.level
    logger.setLevel(max(old, logging.getLogger().getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(old)


def _connect(dd, address: str, timeout: float) -> Client:
    try:
        client = dd.Client(address, timeout=timeout, direct_to_workers=True)
    except ValueError as exc:  # malformed: missing port, unknown scheme
        raise ClusterConfigError(f"scheduler {address!r}: {exc}") from None
    except (OSError, TimeoutError):
        raise ClusterError(f"Dask scheduler {address} did not answer within {timeout:g} s "
                           "(is `dask scheduler` running there? check host and port)") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError):
        client.close()
        raise ClusterError(f"Dask scheduler {address} has no worker after {timeout:g} s "
                           f"(start one: dask worker {address})") from None
    return client


def symbol_chunks(starts: np.ndarray, ends: np.ndarray, target_rows: int) -> list[slice]:
    """Consecutive symbols grouped into chunks of about ``target_rows`` rows (whole symbols)."""
    chunks: list[slice] = []
    first, rows = 0, 0
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        rows += int(b - a)
        if rows >= target_rows:
            chunks.append(slice(first, i + 1))
            first, rows = i + 1, 0
    if first < len(starts):
        chunks.append(slice(first, len(starts)))
    return chunks


def cluster_factor_values(client: Client, inputs: Bars, starts: np.ndarray, ends: np.ndarray,
                          specs: Sequence[FactorSpec], out: np.ndarray) -> np.ndarray:
    """:func:`factor_values` over chunks of symbols on ``client``'s workers, into ``out``.

    Each chunk's input columns are scattered once (by value); results land in
    their own rows of ``out`` whatever order they finish in.
    """
    dd = _distributed()
    if len(starts) == 0:
        return out
    threads = max(1, sum(client.nthreads().values()))
    total = int(ends[-1])
    target = max(1, min(MAX_TASK_ROWS, math.ceil(total / (threads * TASKS_PER_THREAD))))
    chunks = symbol_chunks(starts, ends, target)
    rows = [(int(starts[c][0]), int(ends[c][-1])) for c in chunks]
    address = client.scheduler.address
    try:
        data = client.scatter([{k: v[lo:hi] for k, v in inputs.items()} for lo, hi in rows],
                              hash=False)
        futures = client.map(factor_values, data, [starts[c] - lo for c, (lo, _) in
                                                   zip(chunks, rows, strict=True)],
                             [ends[c] - lo for c, (lo, _) in zip(chunks, rows, strict=True)],
                             specs=list(specs), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in dd.as_completed(futures):
            i = index[future.key]
            lo, hi = rows[i]
            out[:, lo:hi] = future.result()
            future.release()
            data[i].release()  # the worker may drop this chunk's inputs now
    except (OSError, dd.KilledWorker) as exc:
        raise ClusterError(f"Dask cluster {address} failed during the factor computation: "
                           f"{type(exc).__name__}: {exc}") from None
    log.debug("factors: %d symbols in %d tasks on %s", len(starts), len(chunks), address)
    return out
