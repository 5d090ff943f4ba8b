"""CaptureSource: stream a capture as batches of frames, in bounded memory.

The file is read in chunks (8 MiB by default) into fresh numpy buffers; a
record walk finds the frames in each chunk and every batch points into its
chunk. A buffer is never written again once frames in it have been handed
out, so consumers may keep batches (and slices of their bytes) as long as
they like, while memory stays flat however large the file is.

Damage stops the walk: the frames before it are yielded first, then a
CaptureError names the file, the 1-based number of the frame that could not
be read and the byte offset (in the decompressed stream) where damage starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from ..errors import CaptureError, CaptureWarning
from . import accel
from . import walk as w
from .batch import FrameBatch
from .formats import Damage, Interface, WalkResult
from .linktypes import LT_RECORD, SUPPORTED_LINKTYPES, linktype_name
from .pcap import MAGICS as PCAP_MAGICS
from .pcap import PcapFormat
from .pcapng import PcapngFormat
from .stream import InputStream, magic_name, unread_codec

DEFAULT_CHUNK = 2 * 1024 * 1024
# Without the ahead-of-time kernels, inputs expected to hold fewer frames than this are
# walked (and so decoded) in pure Python: importing numba and loading the cached kernels
# costs ~0.3 s, what the pure path spends on roughly this many frames.
COMPILE_MIN_FRAMES = 50_000
# Once numba is imported (by anyone), inputs of this size walk compiled from the start.
LOADED_MIN_BYTES = 1 << 20
# Frames walked in pure Python to estimate the average record size before deciding.
SAMPLE_FRAMES = 2048
# compression hides the uncompressed size; captures typically compress 2-5x.
GZIP_RATIO_GUESS = 3

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

# magic bytes of things people mistake for captures, for a helpful message
_OTHER_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive"),
    (b"snoop", "a Solaris snoop capture (convert it with editcap -F pcap)"),
    (b"XCP\x00", "a NetXray/Sniffer capture (convert it with editcap -F pcap)"),
)


def _describe_unknown(magic: bytes) -> str:
    if what := unread_codec(magic) or magic_name(magic, _OTHER_MAGICS):
        return f"not a pcap or pcapng capture: this is {what}"
    if magic and all(32 <= b < 127 or b in (9, 10, 13) for b in magic):
        return f"not a pcap or pcapng capture: it starts with text {magic.decode('ascii')!r}"
    return f"not a pcap or pcapng capture: unknown magic 0x{magic.hex()}"


class CaptureSource:
    """A capture file (or ``-`` for stdin) as an iterable of FrameBatch.

    Use as a context manager; iterate once. Attributes ``format``,
    ``compressed`` and (for pcap) ``interfaces`` are known right after opening;
    pcapng interfaces accumulate as their blocks are read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 65536,
        backend: str | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        self.path = os.fspath(path) if path != "-" else "-"
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if backend is not None and backend not in accel.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        self.batch_size = int(batch_size)
        self.frames_read = 0
        self.bytes_read = 0
        self.backend_used: set[str] = set()
        self._backend = backend
        self._chunk = max(int(chunk_size), 4096)
        self._caplen_gt_orig: list[int] = []  # [count, first frame, offset, caplen, origlen]
        self._time_far: list[int] = []  # [count, first frame, offset, its saturated time]
        self._back: list[int] = []  # [count, first frame, offset, how far back] (ns)
        self._latest = -w.INT64_MAX  # the latest packet time so far
        # unsupported linktype -> [first frame, its offset, frames]
        self._link_seen: dict[int, list[int]] = {}
        self._closed = False
        self._skipped = False  # skip_to moved the read point (see _batches)
        self._iter: Iterator[FrameBatch] | None = None
        self._walk_backend: str | None = None  # decided after a sample of frames
        self._sample_bytes = 0

        self._stream = InputStream(self.path)
        self.compressed = self._stream.compressed
        magic = self._stream.magic
        try:
            if not magic:
                raise CaptureError(self.path, "empty file (no capture header)", frame=1, offset=0)
            if magic[:4] == PCAPNG_MAGIC:
                self._fmt: PcapFormat | PcapngFormat = PcapngFormat(magic)
            elif magic[:4] in PCAP_MAGICS:
                self._fmt = PcapFormat(magic)
            elif len(magic) < 4:
                raise CaptureError(
                    self.path,
                    f"not a capture file: only {len(magic)} byte{'s' if len(magic) > 1 else ''}",
                    frame=1,
                    offset=0,
                )
            else:
                raise CaptureError(self.path, _describe_unknown(magic), frame=1, offset=0)
            self.format = self._fmt.name
            # first buffer: the sniffed magic, then as much as the input gives
            self._buf = np.empty(self._chunk, dtype=np.uint8)
            self._buf[: len(magic)] = np.frombuffer(magic, dtype=np.uint8)
            self._filled = len(magic)
            self._base = 0
            self._pos = 0
            self._read_more()
            self._start()
        except BaseException:
            self._stream.close()
            raise

    # --- public ------------------------------------------------------------------------------
    @property
    def interfaces(self) -> list[Interface]:
        return self._fmt.interfaces

    @property
    def linktype(self) -> int | None:
        """Link type of the first interface (None before a pcapng IDB is read)."""
        ifs = self._fmt.interfaces
        return ifs[0].linktype if ifs else None

    @property
    def snaplen(self) -> int | None:
        ifs = self._fmt.interfaces
        return ifs[0].snaplen if ifs else None

    @property
    def sections(self) -> list[dict[str, str]]:
        return getattr(self._fmt, "sections", [])

    @property
    def warnings(self) -> list[CaptureWarning]:
        """Oddities that did not stop reading (so far), each kind once with its first place
        and a count of the further packets like it."""
        out: list[CaptureWarning] = []
        for seen, kind, say in (
            (self._caplen_gt_orig, "caplen_gt_origlen", _caplen_gt_origlen),
            (self._time_far, "time_out_of_range", _time_out_of_range),
            (self._back, "time_back", _time_back),
        ):
            if seen:  # [count, first frame, its offset, what the message says of it]
                count, frame, offset, *facts = seen
                out.append(
                    CaptureWarning(self.path, frame, offset, say(*facts), more=count - 1, kind=kind)
                )
        for lt, (frame, offset, count) in sorted(self._link_seen.items()):
            out.append(
                CaptureWarning(
                    self.path,
                    frame,
                    offset,
                    f"{linktype_name(lt)} is not supported; its frames are counted as undecoded",
                    more=count - 1,
                    kind="linktype_unsupported",
                )
            )
        if isinstance(self._fmt, PcapngFormat):
            for message, pos in self._fmt.warnings:
                out.append(CaptureWarning(self.path, None, pos, message, kind="pcapng"))
            if self._fmt.saw_spb:
                out.append(
                    CaptureWarning(
                        self.path,
                        None,
                        None,
                        "simple packet blocks carry no timestamp; their frames get time 0",
                        kind="pcapng_spb",
                    )
                )
        return out

    def skip_to(
        self, offset: int, frame: int, interfaces: int | None = None, sections: int | None = None
    ) -> bool:
        """Go forward to the record at byte ``offset``, frame number ``frame`` (both as an
        earlier read of this file gave them), before iterating or between batches, without
        reading what lies between. A pcapng file skips only when ``interfaces`` and
        ``sections`` (counts an earlier read knew at that frame) are those known now: no
        block in between can change how the frames read. False (nothing skipped) for
        compressed input, pipes, or a point behind the one reached."""
        if frame < 1 or offset < self._base + self._pos:
            return False
        if isinstance(self._fmt, PcapngFormat) and (
            interfaces != len(self._fmt.interfaces) or sections != len(self._fmt.sections)
        ):
            return False
        if not self._stream.seek(offset):
            return False
        self._buf = np.empty(self._chunk, dtype=np.uint8)  # (batches handed out keep theirs)
        self._base, self._pos, self._filled = offset, 0, 0
        self.frames_read = frame - 1
        self._skipped = True
        return True

    def __iter__(self) -> Iterator[FrameBatch]:
        if self._iter is None:
            self._iter = self._batches()
        return self._iter

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.close()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        codec = f", {self._stream.codec}" if self.compressed else ""
        return f"<CaptureSource {self.path!r} {self.format}{codec}, {self.frames_read} frames read>"

    # --- internals ---------------------------------------------------------------------------
    def _error(self, message: str, pos: int) -> CaptureError:
        """The error for damage at buffer position ``pos``: the next frame could not be read."""
        return CaptureError(self.path, message, frame=self.frames_read + 1, offset=self._base + pos)

    def _read_more(self, need: int = 0) -> bool:
        """Read more input after the unconsumed bytes; False at end of input.

        Appends into the current buffer while it has room (bytes already handed
        out are never touched); otherwise moves the unconsumed tail into a
        fresh buffer big enough for ``need`` bytes.
        """
        tail = self._filled - self._pos
        if self._filled >= len(self._buf) or (need and self._pos + need > len(self._buf)):
            size = max(self._chunk, need, tail + 4096)
            fresh = np.empty(size, dtype=np.uint8)
            fresh[:tail] = self._buf[self._pos : self._filled]
            self._base += self._pos
            self._buf, self._pos, self._filled = fresh, 0, tail
        n = self._stream.readinto(memoryview(self._buf)[self._filled :])
        self._filled += n
        self.bytes_read += n
        return n > 0

    def _start(self) -> None:
        while True:
            eof = self._stream._eof
            try:
                new = self._fmt.start(self._buf, self._pos, self._filled, eof)
            except Damage as d:
                raise self._stream_or(d.message, d.pos, d.cut) from None
            if new >= 0:
                self._pos = new
                return
            if not self._read_more(self._fmt.needed(self._buf, self._pos, self._filled)):
                try:
                    self._fmt.start(self._buf, self._pos, self._filled, True)
                except Damage as d:
                    raise self._stream_or(d.message, d.pos, d.cut) from None
                raise self._error("truncated file header", self._pos)

    def _control(self) -> int:
        """Let the format parse a control block; its warnings get absolute offsets."""
        fmt = self._fmt
        warnings = getattr(fmt, "warnings", None)
        before = len(warnings) if warnings is not None else 0
        new = fmt.control(self._buf, self._pos, self._filled, self._stream._eof)
        if warnings is not None:
            for k in range(before, len(warnings)):
                message, pos = warnings[k]
                warnings[k] = (message, self._base + pos)
        return new

    def _stream_or(self, message: str, pos: int, cut: bool = True) -> CaptureError:
        """Prefer the decompression error over its symptom (a truncated record), not over
        damage in the bytes before it (else a read that met the decompression error first,
        a file read in big steps, would report other damage than a pipe read in small ones)."""
        if self._stream.error and cut:
            return self._error(self._stream.error, self._filled)
        return self._error(message, pos)

    def _backend_for(self) -> str:
        """The walk backend for the next call: decided once, from a sample of frames.

        Explicit choices apply at once. ``auto`` walks the first frames in pure
        Python, estimates the file's frame count from their average size and
        compiles only if the file is large; a stream of unknown size switches
        once enough frames have gone by.
        """
        if self._walk_backend is not None:
            return self._walk_backend
        if self._backend not in (None, accel.BACKEND_AUTO) or accel.pure_forced():
            self._walk_backend = accel.choose(self._backend, want_compiled=False)
            return self._walk_backend
        seen = self.frames_read
        if accel.aot_current() or (
            accel.jit_loaded() and (self._stream.size_hint >= LOADED_MIN_BYTES or seen >= 256)
        ):
            # compiled code costs nothing to load (ahead of time) or numba is already paid
            # for: only the JIT's call overhead, if any, is left to amortise
            self._walk_backend = accel.choose(None, want_compiled=True)
        elif seen >= COMPILE_MIN_FRAMES:
            self._walk_backend = accel.choose(None, want_compiled=True)
        elif seen >= SAMPLE_FRAMES and self._stream.size_hint and self._sample_bytes:
            total = self._stream.size_hint * (GZIP_RATIO_GUESS if self.compressed else 1)
            estimate = seen * total / self._sample_bytes
            self._walk_backend = accel.choose(None, want_compiled=estimate >= COMPILE_MIN_FRAMES)
        return self._walk_backend or accel.BACKEND_PURE

    def _batches(self) -> Iterator[FrameBatch]:
        fmt = self._fmt
        self._skipped = False  # (a skip before the first batch is where reading starts)
        view = memoryview(self._buf)
        view_of = self._buf
        try:
            while not self._closed:
                if view_of is not self._buf:
                    view, view_of = memoryview(self._buf), self._buf
                backend = self._backend_for()
                self.backend_used.add(backend)
                limit = self.batch_size
                if self._walk_backend is None:
                    limit = min(limit, SAMPLE_FRAMES)
                start = self._base + self._pos
                res = fmt.walk(self._buf, view, self._pos, self._filled, backend, limit)
                if self._walk_backend is None:
                    self._sample_bytes += self._base + res.pos - start
                if res.n:
                    batch = self._make_batch(res)
                    self._pos = res.pos
                    self.frames_read += res.n
                    yield batch
                    if self._skipped:  # skip_to moved on while the batch was out
                        self._skipped = False
                        continue
                self._pos = res.pos
                status = res.status
                if status == w.WALK_FULL:
                    continue
                if status == w.WALK_CONTROL:
                    try:
                        new = self._control()
                    except Damage as d:
                        raise self._stream_or(d.message, d.pos, d.cut) from None
                    if new >= 0:
                        self._pos = new
                        continue
                    status = w.WALK_NEED_MORE
                if status == w.WALK_NEED_MORE:
                    if self._read_more(fmt.needed(self._buf, self._pos, self._filled)):
                        continue
                    if self._pos >= self._filled:
                        if self._stream.error:
                            raise self._error(self._stream.error, self._pos)
                        return
                    raise self._stream_or(
                        fmt.truncation(self._buf, self._pos, self._filled), self._pos
                    )
                raise self._error(fmt.describe(status, res.detail, self._buf, self._pos), self._pos)
        finally:
            self._stream.close()

    def _went_back(self, res: WalkResult, first: int, file_offset: np.ndarray) -> None:
        """Count the packets timed before one ahead of them in the file (by more than
        jitter): taken on several interfaces at once (dumpcap -i a -i b), or a merge that
        appended; connections are followed in file order, so theirs may split."""
        ts = res.ts_ns
        keep = (res.linktype != LT_RECORD) & (ts != 0) & (ts > -w.INT64_MAX)
        t = ts if keep.all() else np.where(keep, ts, -w.INT64_MAX)
        run = np.maximum(np.maximum.accumulate(t), self._latest)
        back = np.where(keep, run - t, 0)
        idx = _tally(self._back, back > OVERLAP_SLACK_NS, first, file_offset)
        if idx is not None:
            self._back.append(int(back[idx]))
        self._latest = int(run[-1])

    def _make_batch(self, res: WalkResult) -> FrameBatch:
        first = self.frames_read + 1
        file_offset = res.record + self._base
        idx = _tally(self._caplen_gt_orig, res.caplen > res.origlen, first, file_offset)
        if idx is not None:
            self._caplen_gt_orig += [int(res.caplen[idx]), int(res.origlen[idx])]
        if self._fmt.name == "pcapng":  # (a pcap's 32-bit seconds always fit)
            far = (res.ts_ns == w.INT64_MAX) | (res.ts_ns == -w.INT64_MAX)
            idx = _tally(self._time_far, far, first, file_offset)
            if idx is not None:
                self._time_far.append(int(res.ts_ns[idx]))
        self._went_back(res, first, file_offset)
        lt0 = int(res.linktype[0])
        lts = [lt0] if bool((res.linktype == lt0).all()) else np.unique(res.linktype).tolist()
        for lt in lts:
            if lt in SUPPORTED_LINKTYPES:
                continue
            on = res.linktype == lt
            seen = self._link_seen.get(lt)
            if seen is None:
                idx = int(np.argmax(on))
                self._link_seen[lt] = [first + idx, int(file_offset[idx]), 0]
                seen = self._link_seen[lt]
            seen[2] += int(np.count_nonzero(on)) if len(lts) > 1 else res.n
        return FrameBatch(
            data=self._buf,
            offset=res.offset,
            caplen=res.caplen,
            origlen=res.origlen,
            ts_ns=res.ts_ns,
            linktype=res.linktype,
            iface=res.iface,
            file_offset=file_offset,
            first_frame=first,
        )


def _caplen_gt_origlen(cap: int, orig: int) -> str:
    return (
        f"captured length {cap} is larger than the length on the wire {orig}: a damaged "
        "record header; the captured bytes are kept and the lengths inside the packet decide "
        "what is payload"
    )


def _time_out_of_range(ns: int) -> str:
    return (
        f"timestamp {'after 2262' if ns > 0 else 'before 1677'}, beyond what nanoseconds since "
        "1970 hold: the packet is timed at the limit, and the connections around it may split "
        "(a damaged block or interface resolution)"
    )


def _time_back(ns: int) -> str:
    return (
        f"its time goes back {ns / 1e6:.3f} ms before a packet ahead of it in the file (taken "
        "on several interfaces at once?): connections are followed in file order, so one seen "
        "out of order or twice may split (reordercap sorts a file by time)"
    )


#: timestamps out of order by this much or less are a capture's jitter (several queues)
OVERLAP_SLACK_NS = 1_000_000


def _tally(seen: list[int], mask: np.ndarray, first: int, file_offset: np.ndarray) -> int | None:
    """Count the frames of ``mask`` into ``seen`` ([count, first frame, its offset]); the
    batch index of the first one when it is the first of the file, else None."""
    if not mask.any():
        return None
    count = int(np.count_nonzero(mask))
    if seen:
        seen[0] += count
        return None
    idx = int(np.argmax(mask))
    seen += [count, first + idx, int(file_offset[idx])]
    return idx


def open_capture(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 65536,
    backend: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> CaptureSource:
    """Open a pcap/pcapng file (optionally compressed: gzip, zstd, lz4), or ``-`` for stdin.

    The format is recognised from the magic bytes, never from the name.
    ``backend`` ("auto", "pure", "compiled") selects the record-walk
    implementation; auto compiles only for inputs large enough to pay off.
    Raises CaptureError (one clear line) when the input cannot be opened or
    is not a capture.
    """
    return CaptureSource(path, batch_size=batch_size, backend=backend, chunk_size=chunk_size)
