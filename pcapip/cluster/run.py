"""``pcapip analyze`` on a Dask cluster: each capture file a task on a worker, the join here.

The tasks are :func:`pcapip.flows.parts.read_part` and ``take_frames``; this module maps
them over the cluster (in place of the builtin ``map``), reports progress per worker,
names the worker that could not open a file, and turns a cluster that loses its workers
into one clear line instead of a hang or a partial table.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pcapip.cluster.connect import ClusterError, connect
from pcapip.errors import CaptureError
from pcapip.flows.parts import Part, PartOptions, read_recording
from pcapip.flows.table import FlowTable

# seconds the cluster may have no worker at all before the analysis gives up (the
# environment variable PCAPIP_NO_WORKER_GRACE changes it, e.g. for tests)
NO_WORKER_GRACE = 30.0
# at most this many files a task by default: a fleet's hundreds of rotated files still make
# many tasks (progress, retries, workers that join later), each cut replayed here once
MAX_FILES_PER_TASK = 16


def _grace() -> float:
    try:
        return float(os.environ.get("PCAPIP_NO_WORKER_GRACE", NO_WORKER_GRACE))
    except ValueError:
        return NO_WORKER_GRACE


@dataclass
class ClusterProgress:
    """Where a cluster run stands: files read, bytes read, and the same per worker."""

    files: int  # capture files
    done: int = 0  # files read (first pass)
    bytes_read: int = 0
    workers: dict[str, list[int]] = field(default_factory=dict)  # address -> [files, bytes]

    def line(self) -> str:
        per = "; ".join(
            f"{w}: {n} file{'s' * (n != 1)} {_size(b)}" for w, (n, b) in sorted(self.workers.items())
        )
        return f"{self.done}/{self.files} files, {_size(self.bytes_read)} read ({per})"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def _on_worker(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """Run ``fn`` on the worker; (the worker's address, the result), with the captures it
    could not open named as that worker's."""
    from distributed import get_worker

    addr = get_worker().address
    out = fn(*args)
    if isinstance(out, Part):
        out.errors = [_named(e, addr) for e in out.errors]
    return addr, out


def _named(err: CaptureError, addr: str) -> CaptureError:
    """An error opening a file (no frame read), with the worker that tried."""
    if err.frame is not None or err.offset is not None:
        return err
    return CaptureError(err.path, f"{err.message} (on Dask worker {addr})")


class _Mapper:
    """``map(fn, argument tuples)`` over the cluster: results in order, progress as they
    come."""

    def __init__(self, client: Any, progress: ClusterProgress, say: Callable[[ClusterProgress], None] | None) -> None:
        self.client = client
        self.progress = progress
        self.say = say
        self._alone_since: float | None = None  # since when the cluster has had no worker

    def __call__(self, fn: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
        if not args:
            return []
        stamp = time.monotonic_ns()
        keys = [f"pcapip-{fn.__name__}-{k}-{stamp}" for k in range(len(args))]
        futures = self.client.map(
            _on_worker, [fn] * len(args), *zip(*args, strict=True), key=keys, pure=False
        )
        out: list[Any] = [None] * len(futures)
        where = {f.key: k for k, f in enumerate(futures)}
        for fut in self._completed(futures):
            addr, result = self._result(fut, fn, args[where[fut.key]])
            out[where[fut.key]] = result
            if isinstance(result, Part):
                self._count(addr, result)
        return out

    def _completed(self, futures: list[Any]) -> Iterator[Any]:
        """The futures as they finish; ClusterError when the cluster stays without a worker."""
        from distributed import as_completed

        ready = as_completed(futures)
        quiet_since = time.monotonic()
        try:
            while not ready.is_empty():
                batch = ready.next_batch(block=False)
                if batch:
                    yield from batch
                    quiet_since, self._alone_since = time.monotonic(), None
                    continue
                time.sleep(0.005)  # (a finished task waits at most this long to be seen)
                if time.monotonic() - quiet_since >= 1.0:
                    quiet_since = time.monotonic()  # a second without news: any worker?
                    self._watch(sum(1 for f in futures if not f.done()))
        except BaseException:
            # stop tracking and cancel what is left before the client closes: a tracker
            # still waiting then dies with an exception Dask logs as a traceback
            ready.clear()
            self.client.cancel([f for f in futures if not f.done()])
            raise

    def _watch(self, left: int) -> None:
        """ClusterError once the cluster has had no worker for the grace time."""
        if self.client.scheduler_info(n_workers=-1).get("workers"):
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = time.monotonic()
        elif time.monotonic() - self._alone_since > _grace():
            raise ClusterError(
                f"no Dask worker left at {self.client.scheduler.address} for "
                f"{_grace():.0f} s: {left} task(s) not done, nothing written"
            )

    def _result(self, fut: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        """A finished task's result; its data may have been on a worker that died since, and
        Dask then runs the task again: waited for under the same watch."""
        while True:
            try:
                return fut.result(timeout=1.0)
            except TimeoutError:
                try:
                    self._watch(1)
                except ClusterError:
                    self.client.cancel([fut])
                    raise
            except Exception as exc:  # noqa: BLE001 - the cluster's reasons, as one line
                self._fail(exc, fn, args)

    def _fail(self, exc: Exception, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        from distributed import KilledWorker

        first = args[0][0] if isinstance(args[0], list) and args[0] else args[0]
        what = f"{fn.__name__}({first})"
        if isinstance(exc, KilledWorker):
            raise ClusterError(f"{what}: the Dask workers running it died ({exc})") from None
        if isinstance(exc, CaptureError):
            raise exc
        raise ClusterError(f"{what} failed on the cluster: {type(exc).__name__}: {exc}") from None

    def _count(self, addr: str, part: Part) -> None:
        p = self.progress
        p.done += len(part.names)
        p.bytes_read += part.bytes_read
        w = p.workers.setdefault(addr, [0, 0])
        w[0] += len(part.names)
        w[1] += part.bytes_read
        if self.say is not None:
            self.say(p)


def read_on_cluster(
    paths: Sequence[str],
    options: PartOptions,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    trusted: Any = None,
    chains: Sequence[str] | None = None,
    progress: Callable[[ClusterProgress], None] | None = None,
    rules: Any = None,
) -> tuple[FlowTable, list[CaptureError]]:
    """The table and errors of one read of ``paths``, read by the cluster at ``scheduler``
    or a LocalCluster of ``workers`` processes (``pcapip.flows.parts`` has the how)."""
    with connect(scheduler, workers) as client:
        mapper = _Mapper(client, ClusterProgress(len(paths)), progress)
        return read_recording(
            paths,
            options,
            trusted=trusted,
            mapper=mapper,
            chains=chains,
            rules=rules,
            files_per_part=files_per_part(len(paths), client),
        )


def files_per_part(files: int, client: Any) -> int:
    """Consecutive files a task reads: two tasks per worker the cluster has now, or
    ``PCAPIP_FILES_PER_TASK``. A task per file would cut every connection open at each file
    boundary, and each cut is replayed on this machine; two per worker still lets a slow or
    lost worker's share move."""
    fixed = os.environ.get("PCAPIP_FILES_PER_TASK", "")
    if fixed.isdigit() and int(fixed) > 0:
        return int(fixed)
    workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    return max(1, min(MAX_FILES_PER_TASK, math.ceil(files / (2 * workers))))
