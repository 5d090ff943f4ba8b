"""``pcapip resolve``: an origin's own log records matched to the connections of a capture,
so every record names the real client behind the proxy egress it logged.

``pcapip.resolve.resolve(analysis, frame, ip=…, port=…, time=…)`` does it for a pandas
frame (:mod:`pcapip.resolve.api`); ``pcapip.resolve.resolve_log(analysis, path,
LogSpec(...))`` reads a log file first, as the CLI does (:mod:`pcapip.resolve.logs`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LogSpec", "resolve", "resolve_log"]


def __getattr__(name: str) -> Any:
    # loaded on first use: ``pcapip.resolve.columns`` stays free of numpy and pandas
    if name == "resolve":
        from pcapip.resolve.api import resolve

        return resolve
    if name in ("resolve_log", "LogSpec"):
        from pcapip.resolve import logs

        return getattr(logs, name)
    raise AttributeError(f"module 'pcapip.resolve' has no attribute {name!r}")
