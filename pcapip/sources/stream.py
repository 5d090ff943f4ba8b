"""Byte input for capture readers: a file, stdin, either possibly compressed with gzip,
zstd or lz4 (what Wireshark reads directly).

Compression is recognised by its magic bytes, never by the file name, so
``capture.pcap`` that is really gzip and ``capture.gz`` that is really plain
both work. Reads go straight into the caller's numpy buffer (``readinto``), so
an uncompressed file costs one copy (kernel to buffer) and no Python objects
per chunk.

Pipes get special care: ``tcpdump -w - | pcapip analyze -`` must see packets
as they arrive, so a read on a pipe returns as soon as some bytes are there
instead of waiting for a full chunk.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import select
import stat
import sys
import zlib
from collections.abc import Sequence

from ..errors import CaptureError
from .urls import is_url, open_url

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# zstd's skippable frames (magic 0x184D2A50-5F): metadata such as a seek table, which
# the zstd tool skips; a file may start with one
ZSTD_SKIPPABLE = tuple(bytes([0x50 + k, 0x2A, 0x4D, 0x18]) for k in range(16))
LZ4_MAGIC = b"\x04\x22\x4d\x18"  # (lz4's frame format)


def _gzip(raw: io.RawIOBase) -> io.BufferedIOBase:
    return gzip.GzipFile(fileobj=raw, mode="rb")


class _Zstd(io.RawIOBase):
    """zstd frames one after another (as ``zstd`` writes them, or several concatenated),
    decompressed. Input that ends inside a frame raises EOFError, as gzip does:
    zstandard's own stream reader would end there without a word."""

    def __init__(self, raw: io.RawIOBase) -> None:
        import zstandard  # (only for a zstd capture: its import costs start-up)

        super().__init__()
        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._broken = zstandard.ZstdError
        self._frame = self._new()
        self._fed = False  # the current frame has had input
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        while not self._out:
            data = self._raw.read(1 << 16)
            if not data:
                if self._fed and not self._frame.eof:
                    raise EOFError("zstd frame ends early")
                return b""
            self._out = memoryview(self._decompress(data))
        k = len(self._out) if n < 0 else min(n, len(self._out))
        got, self._out = self._out[:k], self._out[k:]
        return bytes(got)

    def _decompress(self, data: bytes) -> bytes:
        """``data`` through the frames it holds: a frame that ends starts the next."""
        out = []
        while data:
            if self._frame.eof:
                self._frame, self._fed = self._new(), False
            self._fed = True
            try:
                out.append(self._frame.decompress(data))
            except self._broken as exc:
                raise OSError(str(exc)) from exc
            data = self._frame.unused_data if self._frame.eof else b""
        return b"".join(out)

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read1(len(b))
        b[: len(data)] = data
        return len(data)


def _lz4(raw: io.RawIOBase) -> io.BufferedIOBase:
    import lz4.frame  # (only for an lz4 capture)

    return lz4.frame.LZ4FrameFile(raw, mode="rb")


# magic bytes -> (name, the decompressing reader over the raw input)
CODECS = {GZIP_MAGIC: ("gzip", _gzip), ZSTD_MAGIC: ("zstd", _Zstd), LZ4_MAGIC: ("lz4", _lz4)}
CODECS.update((m, CODECS[ZSTD_MAGIC]) for m in ZSTD_SKIPPABLE)
# compressions Wireshark does not read directly either: named, not read
OTHER_CODECS = ((b"\xfd7zXZ", "xz"), (b"BZh", "bzip2"))


def magic_name(head: bytes, table: Sequence[tuple[bytes, str]]) -> str | None:
    """The name ``table`` gives the first magic that ``head`` starts with (a head shorter
    than the magic matches on its first bytes, three at least), or None."""
    for magic, name in table:
        if head.startswith(magic[: len(head)]) and len(head) >= min(len(magic), 3):
            return name
    return None


def unread_codec(head: bytes) -> str | None:
    """What to say of input whose first bytes are a compression pcapip does not read."""
    name = magic_name(head, OTHER_CODECS)
    if name is None:
        return None
    return f"{name}-compressed data (decompress it first; gzip, zstd and lz4 are read directly)"


# what a damaged stream raises: OSError (gzip; zstd's errors as _Zstd passes them on),
# EOFError (it ends early), zlib's error, lz4's RuntimeError
BROKEN = (OSError, EOFError, zlib.error, RuntimeError)


class Prefixed(io.RawIOBase):
    """A raw stream that first returns bytes already read (the sniffed magic)."""

    def __init__(self, prefix: bytes, raw: io.RawIOBase) -> None:
        super().__init__()
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(b) or 0

    def fileno(self) -> int:
        return self._raw.fileno()


def read_prefix(raw: io.RawIOBase, n: int) -> bytes:
    """Read up to n bytes, looping over short reads (a pipe may deliver 1 byte at a time)."""
    out = bytearray()
    while len(out) < n:
        chunk = raw.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def unwrap(head: bytes, raw: io.RawIOBase) -> tuple[str, io.IOBase | None]:
    """(codec, reader) for a byte stream whose first bytes ``head`` were already read from
    ``raw``: the codec its magic names and a reader of the decompressed bytes from the
    start, or ("", None) when it is plain. Raises what ``BROKEN`` lists on a damaged start."""
    codec = CODECS.get(head[:2]) or CODECS.get(head)
    if codec is None:
        return "", None
    name, opener = codec
    return name, opener(Prefixed(head, raw))


class InputStream:
    """Where capture bytes come from. ``magic`` holds the first bytes, already consumed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.compressed = False
        self.codec = ""  # "gzip", "zstd", "lz4" (CODECS) when compressed
        self.interactive = False  # a pipe/terminal: deliver what is there, don't wait for more
        self.size_hint = 0  # bytes of the underlying file when known (0: unknown)
        self.error: str | None = None  # decompression failure, reported after the good data
        self._fd = -1
        self._raw: io.RawIOBase
        self._dec: io.IOBase | None = None  # the decompressing reader
        self._eof = False

        if is_url(path):
            self._open_url(path)
            return
        try:
            if path == "-":
                self._fd = sys.stdin.fileno()
                self._raw = io.FileIO(self._fd, "rb", closefd=False)
            else:
                self._raw = io.FileIO(path, "rb")
                self._fd = self._raw.fileno()
            st = os.fstat(self._fd)
        except OSError as exc:
            raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from None
        except (ValueError, AttributeError):  # stdin closed, None, or not backed by a file
            raise CaptureError(path, "cannot open: no usable standard input") from None
        if path == "-" and os.isatty(self._fd):
            raise CaptureError(
                path, "stdin is a terminal: pipe a capture into it (e.g. tcpdump -w - | ...)"
            )
        if stat.S_ISDIR(st.st_mode):
            self.close()
            raise CaptureError(path, "cannot open: is a directory")
        if stat.S_ISREG(st.st_mode):
            self.size_hint = st.st_size
            with contextlib.suppress(AttributeError, OSError):
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        else:
            self.interactive = True

        self._start()

    def _open_url(self, url: str) -> None:
        """A capture named by URL, read through fsspec (``pcapip.sources.urls``)."""
        raw, self.size_hint = open_url(url)
        self._raw = raw  # type: ignore[assignment]
        self._start()

    def _start(self) -> None:
        """Read the magic bytes: a compression is recognised by them, and unwrapped."""
        path = self.path
        try:
            head = read_prefix(self._raw, 4)
        except OSError as exc:
            self.close()
            raise CaptureError(
                path, f"cannot read: {exc.strerror or exc}", frame=1, offset=0
            ) from None
        try:
            self.codec, self._dec = unwrap(head, self._raw)
            if self._dec is not None:
                self.compressed = True
                head = read_prefix(self._dec, 4)
        except BROKEN as exc:
            self.close()
            raise CaptureError(path, self._corrupt(exc), frame=1, offset=0) from None
        self.magic = head

    def _corrupt(self, exc: BaseException) -> str:
        """What a damaged compressed stream says."""
        if isinstance(exc, EOFError):
            return f"corrupt {self.codec} data: the compressed stream ends early"
        text = str(exc) or type(exc).__name__
        return f"corrupt {self.codec} data: {text[0].lower()}{text[1:]}"

    def fileno(self) -> int:
        return self._fd

    def seek(self, offset: int) -> bool:
        """Go to byte ``offset`` of a regular, uncompressed file; False (nothing moved) for
        any other input, which can only be read through."""
        if self._dec is not None or self.interactive or self._fd < 0 or not self.size_hint:
            return False
        try:
            self._raw.seek(offset)
        except (OSError, ValueError):
            return False
        self._eof = False
        return True

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` (as far as this kind of input allows); 0 means end of input.

        Files and compressed streams are read until the view is full; pipes return
        after the first read plus whatever is immediately available. A
        decompression error ends the input and is kept in ``self.error``.
        """
        if self._eof or len(view) == 0:
            return 0
        total = 0
        try:
            while total < len(view):
                n = self._read_some(view[total:])
                if n == 0:
                    self._eof = True
                    break
                total += n
                if self.interactive and not self._more_ready():
                    break
        except BROKEN as exc:
            self.error = (
                self._corrupt(exc)
                if self._dec is not None
                else f"read error: {getattr(exc, 'strerror', None) or exc}"
            )
            self._eof = True
        return total

    def _read_some(self, view: memoryview) -> int:
        if self._dec is not None:
            # read1 hands back what one decompression step produced, so a damaged
            # stream loses only the step that fails, never the data before it
            data = self._dec.read1(min(len(view), 1 << 20))
            view[: len(data)] = data
            return len(data)
        return self._raw.readinto(view) or 0

    def _more_ready(self) -> bool:
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def close(self) -> None:
        if self._dec is not None:
            with contextlib.suppress(Exception):
                self._dec.close()
            self._dec = None
        raw = getattr(self, "_raw", None)
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()
