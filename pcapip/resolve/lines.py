"""A log read as lines in large blocks of bytes, each block one Arrow string array, and
lines matched whole by one pattern, a block at a time (RE2, ``pyarrow.compute``): the
records' fields stay Arrow text columns, no Python object per record or field; every
line that did not fit is counted, the first few kept with their line numbers."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pcapip.dissect.fields import escape_text
from pcapip.errors import CaptureError, UsageError
from pcapip.resolve.rx import passes
from pcapip.sources.stream import BROKEN, Prefixed, read_prefix, unread_codec, unwrap
from pcapip.sources.urls import is_url, open_url

#: unreadable lines quoted in the report (all are counted)
EXAMPLES = 5
#: bytes read at a time (cut at the last line end; 4 MB: a 300k-line log peaks 50 MB
#: lower than with 16 MB blocks, at the same speed)
BLOCK = 1 << 22


@dataclass
class Parsed:
    """A log's records: ``fields`` (name -> an Arrow text column, one value per record, null
    where the format leaves the field out) and the 1-based line number of each; ``bad``
    counts lines that are no record, ``examples`` quotes the first few as (line number,
    why, text)."""

    fields: dict[str, pa.ChunkedArray]
    line_numbers: np.ndarray
    bad: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    damage: str | None = None  # where and how a compressed log broke off

    def reject(self, number: int, why: str, text: str) -> None:
        self.bad += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((number, why, escape_text(text[:200])))

    def __len__(self) -> int:
        return len(self.line_numbers)


def _open(path: str) -> tuple[IO[bytes], Any]:
    """(the log's bytes, the file under them): a path, ``-`` or a URL fsspec reads;
    decompressed when the magic names gzip, zstd or lz4, as captures are read (by content,
    not by name)."""
    try:
        if path == "-":
            raw: Any = getattr(sys.stdin, "buffer", None)
            if raw is None:  # closed (``<&-``) or not a binary stream
                raise UsageError("--log -: no usable standard input")
        elif is_url(path):  # read through fsspec, as captures named by URL are
            raw = open_url(path)[0]
        else:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115
        head = read_prefix(raw, 4)
        if (other := unread_codec(head)) is not None:
            raise UsageError(f"--log {path}: {other}")
        dec = unwrap(head, raw)[1] or Prefixed(head, raw)
    except CaptureError as exc:
        raise UsageError(f"--log {path}: {exc.message}") from None
    except BROKEN as exc:
        raise UsageError(f"--log {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return (io.BufferedReader(dec) if isinstance(dec, io.RawIOBase) else dec), raw


def read_blocks(
    path: str, size: int = BLOCK, damage: list[str] | None = None
) -> Iterator[tuple[int, pa.StringArray]]:
    """(number of the first line, the lines) of a log file, about ``size`` bytes at a
    time; ``-`` is stdin; gzip, zstd and lz4 are decompressed. A line ends at LF or CRLF
    (its end not kept); bytes that are no UTF-8 become U+FFFD rather than stopping the
    read. A compressed log damaged or cut short gives every line before the damage, then
    says where in ``damage`` (without it: a UsageError)."""
    fh, raw = _open(path)
    first, rest = 1, b""
    try:
        while True:
            data, broken = _fill(fh, size)
            if broken is not None:
                rest += data
                data = b""
                read = first - 1 + rest.count(b"\n") + bool(rest)  # lines read, the last cut
                if damage is None:
                    raise UsageError(f"--log {path}: after line {read}: {broken}")
                damage.append(f"after line {read}: {broken}")
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest, data = data[cut + 1:], data[:cut + 1]
            lines = lines_of(data)
            yield first, lines
            first += len(lines)
        if rest:
            yield first, lines_of(rest)
    finally:
        if path != "-":
            fh.close()
            raw.close()


def _fill(fh: IO[bytes], size: int) -> tuple[bytes, BaseException | None]:
    """Up to ``size`` bytes, a decompression step at a time, and what broke the stream
    (None: nothing): the bytes decompressed before the damage are kept."""
    got: list[bytes] = []
    n = 0
    try:
        while n < size and (step := fh.read1(min(size - n, 1 << 16))):  # type: ignore[attr-defined]
            got.append(step)
            n += len(step)
    except BROKEN as exc:
        return b"".join(got), exc
    return b"".join(got), None


def lines_of(data: bytes) -> pa.StringArray:
    """The lines of ``data`` (each ended by LF or CRLF, the last maybe by nothing), without
    their ends, as one string array over one copy of the text."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:  # as the text reader's errors="replace" reads it
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    b = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(b == 10)
    if len(b) and b[-1] != 10:
        ends = np.append(ends, len(b))  # a last line without its LF
    cr = np.zeros(len(ends), dtype=bool)
    inner = ends > 0
    cr[inner] = b[ends[inner] - 1] == 13
    cut = np.concatenate([ends[ends < len(b)], ends[cr] - 1])  # bytes dropped: LF, CR before
    text = np.delete(b, cut) if len(cut) else b
    # line i starts after i line ends and the CRs of the lines before it
    dropped = np.arange(len(ends)) + np.concatenate([[0], np.cumsum(cr)[:-1]]) if len(ends) else ends
    starts = np.concatenate([[0], ends[:-1] + 1]) - dropped if len(ends) else ends
    small = len(text) < 2**31  # 32-bit offsets: RE2 through Arrow reads them a third faster
    offsets = np.append(starts, len(text)).astype(np.int32 if small else np.int64)
    return pa.Array.from_buffers(pa.string() if small else pa.large_string(), len(ends),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def read_lines(path: str, damage: list[str] | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of a log file (see :func:`read_blocks`)."""
    for first, lines in read_blocks(path, damage=damage):
        yield from enumerate(lines.to_pylist(), first)


def nonempty(col: Any) -> pa.Array:
    """Per value: present and not the empty text."""
    return pc.fill_null(pc.greater(pc.binary_length(col), 0), False)


def _extract(lines: pa.Array, steps: list[str]) -> tuple[dict[str, pa.Array], pa.Array]:
    """Each field's text per line (group name -> values) and whether the line fit, from the
    passes of :func:`pcapip.resolve.rx.passes`, each over the rest the one before left."""
    found: dict[str, pa.Array] = {}
    fit = None
    for step in steps:
        got = pc.extract_regex(lines, pattern=step)
        fit = got.is_valid() if fit is None else pc.and_(fit, got.is_valid())
        for i in range(got.type.num_fields):
            found[got.type.field(i).name] = got.field(i)
        lines = found.pop("rest", lines)
    assert fit is not None
    return found, fit


def by_pattern(blocks: Iterable[tuple[int, pa.Array]], rx: re.Pattern[str], names: list[str]) -> Parsed:
    """Each line matched whole by ``rx`` (field ``i`` its group ``f<i>``), values kept as
    written (a field the line leaves out is empty). Lines whose every field is empty (a
    blank line) are no record; a line that does not fit is counted unless it is blank."""
    chunks: list[list[pa.Array]] = [[] for _ in names]
    numbers = []
    out = Parsed({}, np.zeros(0, np.int64))
    steps = passes(rx.pattern)
    for first, lines in blocks:
        found, fit = _extract(lines, steps)
        texts = [found[f"f{i}"] for i in range(len(names))]
        length = pc.binary_length(texts[0])
        for t in texts[1:]:
            length = pc.add(length, pc.binary_length(t))
        record = pc.and_(fit, pc.greater(length, 0))
        unfit = np.flatnonzero(~fit.to_numpy(zero_copy_only=False))
        if len(unfit):
            for number, text in zip((unfit + first).tolist(),
                                    lines.take(pa.array(unfit)).to_pylist(), strict=True):
                if text.strip():
                    out.reject(number, "does not fit the log format", text)
        for col, text in zip(chunks, texts, strict=True):
            col.append(text.filter(record).cast(pa.large_string()))
        numbers.append(np.flatnonzero(record.to_numpy(zero_copy_only=False)) + first)
    out.fields = {n: pa.chunked_array(c, type=pa.large_string()) for n, c in zip(names, chunks, strict=True)}
    out.line_numbers = np.concatenate(numbers) if numbers else np.zeros(0, np.int64)
    return out
