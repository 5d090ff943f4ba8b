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
) -> Analysis:
    """Map every flow's egress address to its real client.

    ``path_or_paths``: one capture or several, read in order as one recording
    (``"-"`` is stdin). ``trusted``: CIDRs (comma-separated text or a list) of
    the proxies allowed to announce clients; a TOA/PROXY header from anywhere
    else is flagged ``client.untrusted``. ``toa_kinds``: like ``--toa-kind``
    ("N" restricts decoding to the listed kinds, "+N" adds a kind). A damaged
    capture is analysed up to the damage and the error is kept in
    ``Analysis.errors`` (or raised with ``raise_on_damage=True``). ``attempt_timeout``:
    seconds of capture time after which a handshake that never completed ends (None: 5).
    ``vxlan_ports``: UDP ports that carry VXLAN besides 4789 (like ``--vxlan-port``).
    ``progress(capture index, frames, bytes read, total bytes or None)``.

    The one entry point: ``pcapip analyze`` calls it too. Building it imports
    neither pandas nor the frames: they are built on first access.
    """
    from pcapip.errors import UsageError
    from pcapip.flows.run import read_captures
    from pcapip.report.analysis import Analysis

    if isinstance(path_or_paths, str | os.PathLike):
        path_or_paths = [path_or_paths]
    paths = list(path_or_paths)
    if not paths:
        raise UsageError("no capture given")
    table, errors = read_captures(
        paths,
        toa_kinds=toa_kinds,
        trusted=trusted,
        attempt_timeout=attempt_timeout,
        vxlan_ports=vxlan_ports,
        progress=progress,
    )
    if errors and raise_on_damage:
        raise errors[0]
    return Analysis(table, errors)


def __getattr__(name: str) -> Any:
    if name == "Analysis":
        from pcapip.report.analysis import Analysis

        return Analysis
    if name == "resolve":  # the package: pcapip.resolve.resolve(analysis, frame, ...)
        import pcapip.resolve

        return pcapip.resolve
    raise AttributeError(f"module 'pcapip' has no attribute {name!r}")
