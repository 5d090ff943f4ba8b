"""pcapip: who is the real client behind this L4 proxy?

Reads captures, dissects TOA options and PROXY protocol headers, and maps every
flow's egress address to the real client address.

``pcapip.analyze(path)`` returns an :class:`~pcapip.report.analysis.Analysis`
with pandas frames; ``pcapip.resolve.resolve(analysis, frame, ip=…, port=…, time=…)``
gives log records the real client of the connection each came from. The heavy modules (numpy, pandas, the decoder) load on
first use, so ``import pcapip`` stays cheap for the CLI, and pandas only when
a frame is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pcapip.report.analysis import Analysis

__all__ = ["Analysis", "__version__", "analyze", "resolve"]


def analyze(
    path_or_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    trusted: str | Sequence[str] | None = None,
    toa_kinds: Sequence[str | int] | None = None,
    raise_on_damage: bool = False,
    attempt_timeout: float | None = None,
    vxlan_ports: Sequence[int] = (),
    progress: Callable[[int, int, int, int | None], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    group_by_dir: bool = False,
    cluster_progress: Callable[[Any], None] | None = None,
    as_dask: bool = False,
    rules: Any = None,
) -> Any:
    """Map every flow's egress address to its real client.

    ``path_or_paths``: one capture or several, read as one recording in the order of their
    first packets (rotated files rarely sort by name; a warning says when the order given
    was not that one; ``"-"`` is stdin and keeps its place); URLs (``s3://``, ``gs://``,
    ``file://``, ``memory://``…) are read through fsspec, and glob patterns expanded. ``trusted``: CIDRs (comma-separated
    text or a list) of the proxies allowed to announce clients; a TOA/PROXY header from
    anywhere else is flagged ``client.untrusted``. ``toa_kinds``: like ``--toa-kind``
    ("N" restricts decoding to the listed kinds, "+N" adds a kind). A damaged
    capture is analysed up to the damage and the error is kept in
    ``Analysis.errors`` (or raised with ``raise_on_damage=True``). ``attempt_timeout``:
    seconds of capture time after which a handshake that never completed ends (None: 5).
    ``vxlan_ports``: UDP ports that carry VXLAN besides 4789 (like ``--vxlan-port``).
    ``progress(capture index, frames, bytes read, total bytes or None)``.

    On a Dask cluster: ``scheduler`` ("tcp://HOST:PORT", an existing cluster) or
    ``workers`` (a LocalCluster of that many processes) reads a file per task, with exactly
    the result of one read (``pcapip.flows.parts``); ``cluster_progress(ClusterProgress)``
    as files are done. ``group_by_dir``: files of different directories are different
    vantage points, whose connections are never joined. ``as_dask``: the frames come back
    as Dask DataFrames.

    ``rules``: the proxy's forwarding rules (a file in EdgeOne's batch format, like
    ``--rules``, or a :class:`pcapip.rules.RuleSet`): each flow gets its rule in the ``rule``
    column, and ``rule.mismatch`` / ``rule.unmatched`` where the wire disagrees.

    The one entry point: ``pcapip analyze`` calls it too. Building it imports
    neither pandas nor the frames: they are built on first access.
    """
    from pcapip.errors import UsageError
    from pcapip.report.analysis import Analysis
    from pcapip.sources.order import in_time_order
    from pcapip.sources.urls import expand

    if isinstance(path_or_paths, str | os.PathLike):
        path_or_paths = [path_or_paths]
    paths = expand([os.fspath(p) for p in path_or_paths])
    if not paths:
        raise UsageError("no capture given")
    chains = [os.path.dirname(p) for p in paths] if group_by_dir else None
    paths, reordered = in_time_order(paths, chains)
    judged = None
    if rules is not None:  # a bad file fails before any reading (loaded only when given)
        from pcapip.rules import ruleset

        judged = ruleset(rules)
    if scheduler is None and workers is None and chains is None:
        from pcapip.flows.run import read_captures

        table, errors = read_captures(
            paths,
            toa_kinds=toa_kinds,
            trusted=trusted,
            attempt_timeout=attempt_timeout,
            vxlan_ports=vxlan_ports,
            progress=progress,
            rules=judged,
        )
    else:
        table, errors = _in_parts(
            paths, chains, scheduler, workers, cluster_progress,
            trusted=trusted, toa_kinds=toa_kinds, attempt_timeout=attempt_timeout,
            vxlan_ports=vxlan_ports, rules=judged,
        )
    if errors and raise_on_damage:
        raise errors[0]
    if reordered is not None:
        table.warnings.insert(0, reordered)
    a = Analysis(table, errors)
    a.capture_groups = chains
    if as_dask:
        from pcapip.cluster.frames import DaskAnalysis

        return DaskAnalysis(a)
    return a


def _in_parts(
    paths: list[str],
    chains: list[str] | None,
    scheduler: str | None,
    workers: int | None,
    cluster_progress: Callable[[Any], None] | None,
    **opts: Any,
) -> tuple[Any, list[Any]]:
    """A recording read a file at a time: on a cluster, or here (``group_by_dir``)."""
    from pcapip.errors import UsageError
    from pcapip.flows.parts import PartOptions, read_recording
    from pcapip.flows.run import registry_for, timeouts
    from pcapip.flows.trusted import parse_trusted

    if "-" in paths:
        raise UsageError("standard input ('-') cannot be read in parts")
    nets = parse_trusted(opts["trusted"])  # bad input fails before any reading
    registry_for(opts["toa_kinds"])
    timeouts(opts["attempt_timeout"])
    options = PartOptions(
        tuple(str(k) for k in opts["toa_kinds"] or ()),
        opts["attempt_timeout"],
        tuple(int(p) for p in opts["vxlan_ports"]),
    )
    if scheduler is None and workers is None:
        return read_recording(paths, options, trusted=nets, chains=chains, rules=opts["rules"])
    from pcapip.cluster import read_on_cluster

    return read_on_cluster(
        paths, options, scheduler=scheduler, workers=workers, trusted=nets, chains=chains,
        progress=cluster_progress, rules=opts["rules"],
    )

def __getattr__(name: str) -> Any:
    if name == "Analysis":
        from pcapip.report.analysis import Analysis

        return Analysis
    if name == "resolve":  # the package: pcapip.resolve.resolve(analysis, frame, ...)
        import pcapip.resolve

        return pcapip.resolve
    raise AttributeError(f"module 'pcapip' has no attribute {name!r}")
