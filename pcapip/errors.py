"""Errors that reach the user as one clear line, never as a traceback.

Every error about input names where it happened (file, packet number, byte
offset) because an operator holding a 4 GB capture needs to know whether the
damage is at the end (a capture cut off by a full disk) or in the middle.
"""

from __future__ import annotations


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
        where = [self.path]
        if self.frame is not None:
            where.append(f"packet {self.frame}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        return f"{': '.join([', '.join(where), self.message])}"


class UsageError(PcapipError):
    """Bad command-line or API arguments."""
