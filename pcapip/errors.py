"""Errors that reach the user as one clear line, never as a traceback.

Every error about input names where it happened (file, packet number, byte
offset) because an operator holding a 4 GB capture needs to know whether the
damage is at the end (a capture cut off by a full disk) or in the middle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PcapipError(Exception):
    """Base class for errors pcapip reports to the user (exit status 2)."""


class CaptureError(PcapipError):
    """A capture could not be read (fully). Frames read before the damage stay valid.

    ``frame`` is the 1-based number of the frame that could not be read (the
    one after the last good frame); ``offset`` the byte offset in the
    (decompressed) file where the damage starts.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        frame: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.path = path
        self.message = message
        self.frame = frame
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        return located(self.path, self.frame, self.offset, self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled whole (a cluster's workers send them back): the keyword fields too
        return (type(self), (self.path, self.message), {"frame": self.frame, "offset": self.offset})


def located(file: str, packet: int | None, offset: int | None, message: str) -> str:
    """``FILE, packet N, byte offset X: message``: how damage and warnings name a place."""
    where = [file]
    if packet is not None:
        where.append(f"packet {packet}")
    if offset is not None:
        where.append(f"byte offset {offset}")
    return f"{', '.join(where)}: {message}"


@dataclass(slots=True)
class CaptureWarning:
    """An oddity that did not stop reading: never silent, never an exit status.

    Repeats of one oddity are summarised, not listed: ``packet``/``offset``
    name the first occurrence and ``more`` counts the further packets like it,
    so a file where every record is odd costs one warning, not millions.
    ``kind`` is a stable identifier to group or test on (the text may change).
    """

    file: str
    packet: int | None
    offset: int | None
    message: str
    more: int = 0
    kind: str = ""

    def __str__(self) -> str:
        tail = ""
        if self.more:
            tail = f" (and {self.more} more packet{'s' if self.more > 1 else ''} like it)"
        return located(self.file, self.packet, self.offset, self.message) + tail


class UsageError(PcapipError):
    """Bad command-line or API arguments."""
