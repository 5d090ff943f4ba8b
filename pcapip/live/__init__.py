"""Live capture: a privilege-separated capture tool feeding the ordinary analysis engine.

dumpcap (or tcpdump) opens the interface and writes the capture to a pipe;
:mod:`pcapip.live.feed` copies it to ``-w`` and runs the same reader as
``pcapip analyze`` on it; :mod:`pcapip.live.tracking` drives the flow stage
batch by batch and reports each flow as soon as its client is known;
:mod:`pcapip.live.session` is the loop that ties them together.
"""

from __future__ import annotations

from pcapip.live.errors import (
    CaptureFailed,
    FilterError,
    InterfaceGone,
    InterfaceNotFound,
    LiveError,
    NoPermission,
    ToolMissing,
)
from pcapip.live.tools import CaptureTool, capture_argv, find_tool, list_interfaces

__all__ = [
    "CaptureFailed",
    "CaptureTool",
    "FilterError",
    "InterfaceGone",
    "InterfaceNotFound",
    "LiveError",
    "NoPermission",
    "ToolMissing",
    "capture_argv",
    "find_tool",
    "list_interfaces",
]
