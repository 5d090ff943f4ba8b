"""Reaching a Dask cluster: an existing scheduler (``--scheduler tcp://HOST:PORT``) or a
``LocalCluster`` of ``--workers N`` processes on this machine, closed when done."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from pcapip.errors import PcapipError, UsageError


class ClusterError(PcapipError):
    """The cluster could not run the analysis (unreachable, no workers left, a task lost)."""


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None, timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` or for a new LocalCluster of ``workers``
    single-threaded worker processes (one of the two must be given)."""
    if (scheduler is None) == (workers is None):
        raise UsageError("give either a Dask scheduler address or a number of local workers")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "a Dask cluster needs dask.distributed: pip install 'pcapip[cluster]'"
        ) from None
    with contextlib.ExitStack() as stack:
        # Dask's own log lines (a lost worker's rescheduling, shutdown chatter, a closing
        # client's threads) are not pcapip's messages: what matters reaches us as results
        # or as one ClusterError line
        for name in ("distributed", "asyncio"):
            quiet = logging.getLogger(name)
            stack.callback(quiet.setLevel, quiet.level)
            quiet.setLevel(logging.CRITICAL + 1)
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout=f"{timeout}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        else:
            # Dask's nanny pins glibc's trim threshold to 64 KiB in its workers, which hands
            # every large numpy buffer back to the kernel and takes it again: reading a
            # capture then costs 1.6x the CPU (measured); pcapip's workers keep glibc's own
            import dask

            stack.enter_context(
                dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
            )
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # (its shutdown chatter; failures reach us as results)
            )
            stack.callback(cluster.close)
            client = Client(cluster)
        stack.callback(client.close)
        yield client
