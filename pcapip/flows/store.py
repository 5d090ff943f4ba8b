"""Packed columns, in memory (:class:`MemStore`) or in one unnamed temporary file
(:class:`DiskStore`): where the rows of ended flows and the flow table are kept
(``pcapip.flows.packed``), read back a column or a slice of rows at a time.

When a temporary file cannot be written (a full disk, no temporary directory), the
store keeps what it is given in memory from then on: nothing is lost, memory grows
instead of disk, and the trouble is recorded once (:func:`take_trouble`) for the
table's warnings to say where and why.
"""

from __future__ import annotations

import bisect
import errno
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

# (temporary directory, the error) of each failed write since the last take_trouble
_trouble: dict[tuple[str, str], None] = {}


def trouble() -> list[tuple[str, str]]:
    """What :func:`take_trouble` would give, left for it."""
    return list(_trouble)


def take_trouble() -> list[tuple[str, str]]:
    """(directory, error) of every temporary file that could not be written since the last
    call: the rows meant for it were held in memory instead."""
    out = list(_trouble)
    _trouble.clear()
    return out


class MemStore(dict[str, np.ndarray]):
    """Packed columns in memory: name -> array."""

    on_disk = False

    def slice(self, name: str, lo: int, hi: int) -> np.ndarray:
        return self[name][lo:hi]

    def size(self, name: str) -> int:
        return int(self[name].size) if name in self else 0

    def drop(self, name: str) -> None:
        del self[name]

    def constant(self, name: str) -> Any:
        return None  # (in memory, reading a column costs no more than knowing it)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.values())


# a segment: (file offset, items, the one value of a constant segment or None, and for
# a segment written narrower than its column (smallest value, stored dtype), for a sparse
# one (its common value, how many others, SPARSE), or None)
Seg = tuple[int, int, Any, Any]
SPARSE = "sparse"
_POS = np.dtype(np.int32)  # a sparse segment's positions of the values that differ


def _sparse(arr: np.ndarray, low: Any, width: int) -> tuple[Any, np.ndarray] | None:
    """(the common value, where the others are) when ``arr`` is one value but for a few
    (a flood's NULL client ports, its rare refused attempts), written in fewer bytes than
    ``width`` bytes a value; else None."""
    for common in (low, arr[0]):
        differ = arr != common
        k = int(np.count_nonzero(differ))
        if k * (_POS.itemsize + arr.itemsize) * 2 < arr.size * width:
            return common, np.flatnonzero(differ).astype(_POS)
        if common == arr[0]:
            break
    return None


def _narrow(span: int, dt: np.dtype) -> np.dtype | None:
    """The smallest unsigned dtype narrower than ``dt`` that holds 0..``span``, or None."""
    for cand in (np.uint8, np.uint16, np.uint32):
        d = np.dtype(cand)
        if d.itemsize >= dt.itemsize:
            return None
        if span < 1 << (8 * d.itemsize):
            return d
    return None


class DiskStore:
    """Packed columns in one unnamed temporary file, read back a column or a slice at a
    time: what a capture with millions of connections holds for its table stays on
    disk (in the page cache while there is room) instead of in the process.

    Each append writes a segment at the end of the file; a column is its segments in
    order (the tracker appends one per spill, the table one per column). A segment whose
    values are all the same (a flood's empty TOA and PROXY columns) is kept as that one
    value, not written; one whose values lie close together (a block's frame numbers,
    times, ports) is written as their distance from the smallest, in 1, 2 or 4 bytes.
    Once the file cannot be written, segments go to memory (``_mem``, which holds the
    file's offsets from ``_mem_at`` on).
    """

    on_disk = True

    def __init__(self) -> None:
        self._file: Any = None
        self._end = 0
        self._segs: dict[str, list[Seg]] = {}
        self._firsts: dict[str, list[int]] = {}  # name -> each segment's first item
        self._dtypes: dict[str, np.dtype] = {}
        self._sizes: dict[str, int] = {}
        self._mem: bytearray | None = None
        self._mem_at = 0

    def append(self, name: str, values: np.ndarray) -> None:
        dt = self._dtypes.setdefault(name, values.dtype)
        arr = np.ascontiguousarray(values, dtype=dt)
        low = high = narrow = sparse = None
        if arr.size and dt.kind in "biu":
            low, high = arr.min(), arr.max()
            if dt.kind != "b":
                narrow = _narrow(int(high) - int(low), dt)
            if low != high and arr.size >= 64:
                sparse = _sparse(arr, low, (narrow or dt).itemsize)
        if arr.size > 1 and low == high:
            seg: Seg = (-1, int(arr.size), arr[0], None)
        elif sparse is not None:  # (where the others are, then their values)
            common, where = sparse
            seg = (self._end, int(arr.size), None, (common, where.size, SPARSE))
            self._write(memoryview(where).cast("B"))
            self._write(memoryview(np.ascontiguousarray(arr[where])).cast("B"))
        else:
            if narrow is not None:  # (the values less the smallest, in 1, 2 or 4 bytes)
                arr = np.subtract(arr, low, dtype=narrow, casting="unsafe")
            seg = (self._end, int(arr.size), None, None if narrow is None else (low, narrow))
            self._write(memoryview(arr).cast("B"))  # (written as it is: no copy)
        self._segs.setdefault(name, []).append(seg)
        self._firsts.setdefault(name, []).append(self._sizes.get(name, 0))
        self._sizes[name] = self._sizes.get(name, 0) + int(arr.size)

    def _write(self, data: memoryview) -> None:
        """Append ``data`` at the end: to the file, or to memory once the file failed."""
        if self._mem is None:
            import tempfile  # (only when rows spill to disk: its imports cost start-up)

            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(  # noqa: SIM115
                        prefix="pcapip-rows-", buffering=0
                    )
                self._file.seek(self._end)
                done = 0
                while done < data.nbytes:
                    done += self._file.write(data[done:])
                self._end += data.nbytes
                return
            except OSError as exc:  # (what the failed write left past _end is never read)
                _trouble[(tempfile.gettempdir(), exc.strerror or str(exc))] = None
                self._mem, self._mem_at = bytearray(), self._end
        self._mem += data
        self._end += data.nbytes

    def __contains__(self, name: object) -> bool:
        return name in self._segs

    def drop(self, name: str) -> None:
        """Forget column ``name`` (its bytes stay in the file until it closes)."""
        for d in (self._segs, self._firsts, self._dtypes, self._sizes):
            d.pop(name, None)

    def constant(self, name: str) -> Any:
        """The one value of a column whose every segment holds only that value (a flood's
        empty TOA and PROXY columns), else None."""
        segs = self._segs.get(name)
        if not segs or segs[0][2] is None:
            return None
        first = segs[0][2]
        return first if all(s[2] is not None and s[2] == first for s in segs) else None

    def __iter__(self) -> Iterator[str]:
        return iter(self._segs)

    def keys(self) -> list[str]:
        return list(self._segs)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.slice(name, 0, self._sizes[name])

    def slice(self, name: str, lo: int, hi: int) -> np.ndarray:
        dt = self._dtypes[name]
        lo = max(0, lo)
        hi = min(hi, self._sizes[name])
        out = np.empty(max(0, hi - lo), dtype=dt)
        if out.size == 0:
            return out
        view = memoryview(out).cast("B")
        firsts = self._firsts[name]
        first = bisect.bisect_right(firsts, lo) - 1  # (a column has thousands of segments)
        at = firsts[first]  # first item of the current segment
        for off, count, same, packed in itertools.islice(self._segs[name], first, None):
            a, b = max(lo, at), min(hi, at + count)
            if a < b and same is not None:
                out[a - lo : b - lo] = same
            elif a < b and packed is not None and len(packed) == 3:
                self._sparse_read(off, packed, a - at, b - at, out[a - lo : b - lo])
            elif a < b and packed is not None:
                part = np.empty(b - a, dtype=packed[1])
                self._read(off + (a - at) * part.itemsize, memoryview(part).cast("B"))
                np.add(part, packed[0], out=out[a - lo : b - lo], dtype=dt, casting="unsafe")
            elif a < b:
                self._read(
                    off + (a - at) * dt.itemsize,
                    view[(a - lo) * dt.itemsize :][: (b - a) * dt.itemsize],
                )
            at += count
            if at >= hi:
                break
        return out

    def _sparse_read(self, off: int, packed: tuple, a: int, b: int, out: np.ndarray) -> None:
        """Items ``a:b`` of a sparse segment at ``off`` into ``out``."""
        common, k = packed[0], packed[1]
        out[:] = common
        pos = np.empty(k, dtype=_POS)
        self._read(off, memoryview(pos).cast("B"))
        i, j = np.searchsorted(pos, [a, b]).tolist()
        if i < j:
            vals = np.empty(j - i, dtype=out.dtype)
            self._read(off + k * _POS.itemsize + i * vals.itemsize, memoryview(vals).cast("B"))
            out[pos[i:j] - a] = vals

    def _read(self, offset: int, into: memoryview) -> None:
        if self._mem is not None and offset >= self._mem_at:  # (a segment is in one place)
            a = offset - self._mem_at
            with memoryview(self._mem) as mem:
                into[:] = mem[a : a + into.nbytes]
            return
        fh = self._file
        try:
            fh.seek(offset)
            got = 0
            while got < into.nbytes:
                k = fh.readinto(into[got:])
                if not k:
                    raise OSError(errno.EIO, "it ended early")
                got += k
        except OSError as exc:  # (unnamed: say which directory, not "standard output")
            import tempfile

            why = f"reading back pcapip's temporary file: {exc.strerror or exc}"
            raise OSError(exc.errno, why, tempfile.gettempdir()) from exc

    def size(self, name: str) -> int:
        return self._sizes.get(name, 0)

    @property
    def nbytes(self) -> int:
        return len(self._mem) if self._mem is not None else 0  # (on disk: none)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._mem = None
        self._segs.clear()
        self._firsts.clear()
        self._sizes.clear()

    def to_memory(self, close: bool = True) -> MemStore:
        """Every column read back into memory (the file closed, unless ``close`` is False)."""
        mem = MemStore({n: self[n] for n in self})
        if close:
            self.close()
        return mem

    def __reduce__(self) -> tuple[Any, tuple[dict[str, np.ndarray]]]:
        # a copy or a pickle holds the columns themselves (temporary files do not travel)
        return (MemStore, (self.to_memory(close=False),))
