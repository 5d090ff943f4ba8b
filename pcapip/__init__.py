"""pcapip: who is the real client behind this L4 proxy?

Reads captures, dissects TOA options and PROXY protocol headers, and maps every
flow's egress address to the real client address.

``pcapip.analyze(path)`` returns an :class:`~pcapip.report.analysis.Analysis`
with pandas frames. The heavy modules (numpy, pandas, the decoder) load on
first use, so ``import pcapip`` stays cheap for the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pcapip.report.analysis import Analysis

__all__ = ["Analysis", "__version__", "analyze"]


def analyze(
    path_or_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    trusted: str | Sequence[str] | None = None,
    toa_kinds: Sequence[str | int] | None = None,
    raise_on_damage: bool = False,
) -> Analysis:
    """Map every flow's egress address to its real client.

    ``path_or_paths``: one capture or several, read in order as one recording
    (``"-"`` is stdin). ``trusted``: CIDRs (comma-separated text or a list) of
    the proxies allowed to announce clients; a TOA/PROXY header from anywhere
    else is flagged ``client.untrusted``. ``toa_kinds``: like ``--toa-kind``
    ("N" restricts decoding to the listed kinds, "+N" adds a kind). A damaged
    capture is analysed up to the damage and the error is kept in
    ``Analysis.errors`` (or raised with ``raise_on_damage=True``).
    """
    from pcapip.report.analysis import analyze as _analyze

    return _analyze(
        path_or_paths, trusted=trusted, toa_kinds=toa_kinds, raise_on_damage=raise_on_damage
    )


def __getattr__(name: str) -> Any:
    if name == "Analysis":
        from pcapip.report.analysis import Analysis

        return Analysis
    raise AttributeError(f"module 'pcapip' has no attribute {name!r}")
