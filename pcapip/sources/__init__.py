"""Capture sources: pcap/pcapng files, gzip-compressed or not, or a stream on stdin.

``open_capture(path)`` returns a CaptureSource that yields FrameBatch objects
(raw frames in one buffer, addressed by offset) in file order.
"""

from __future__ import annotations

from .batch import FrameBatch
from .capture import CaptureSource, open_capture
from .formats import Interface
from .linktypes import LINKTYPE_NAMES, SUPPORTED_LINKTYPES, linktype_name

__all__ = [
    "CaptureSource",
    "FrameBatch",
    "Interface",
    "LINKTYPE_NAMES",
    "SUPPORTED_LINKTYPES",
    "linktype_name",
    "open_capture",
]
