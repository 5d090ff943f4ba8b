"""Putting packed rows in order of each flow's first packet, a bucket of rows at a time.

Rows are packed in the order flows end; the table numbers them in the order they
began. Sorting ten million rows at once holds a key, a permutation and a moved copy
of each column: hundreds of MB that grow with the capture. Here the sort keys are
read a slice at a time and dealt into buckets of about ``SLICE`` rows by key range
(bounds from a sample), each bucket is sorted on its own and its rows are moved
column by column from the span of the source rows it covers. Flows end soon after
they begin in any real capture (a SYN flood's attempts within their timeout), so a
bucket's rows lie close together and memory stays a few slices, whatever the
capture's length.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pcapip.flows.packed import DiskStore, MemStore

SLICE = 1 << 20  # rows read at a time
_SAMPLE = 64  # one key in this many sets the bucket bounds
_FLAT = ("hf_cap", "hf_frame")  # per-row lists, flat (lengths in hf_len)

Store = MemStore | DiskStore


def sort_key(c: Store, lo: int, hi: int) -> np.ndarray:
    """(capture, first frame) of rows ``lo:hi`` as one int64 (frames below 2**40)."""
    return c.slice("capture", lo, hi) * (1 << 40) + c.slice("first_frame", lo, hi)


def ordered(c: Store, n: int) -> Iterator[np.ndarray]:
    """The source rows in output order, a bucket (sorted array of row numbers) at a time;
    ties keep the order the rows came in (as a stable sort)."""
    if n == 0:
        return
    if n <= SLICE:
        yield np.argsort(sort_key(c, 0, n), kind="stable")
        return
    sample = np.sort(
        np.concatenate([sort_key(c, lo, lo + SLICE)[::_SAMPLE] for lo in range(0, n, SLICE)])
    )
    step = max(1, SLICE // _SAMPLE)
    bounds = sample[step::step]
    spool = DiskStore()
    try:
        _deal(c, n, bounds, spool)
    except OSError:  # no room for the buckets: sort the keys at once, in memory
        spool.close()
        keys = np.concatenate([sort_key(c, lo, lo + SLICE) for lo in range(0, n, SLICE)])
        yield np.argsort(keys, kind="stable")
        return
    try:
        for b in range(bounds.size + 1):
            if f"r{b}" in spool:
                rows, keys = spool[f"r{b}"], spool[f"k{b}"]
                yield rows[np.argsort(keys, kind="stable")]
    finally:
        spool.close()


def _deal(c: Store, n: int, bounds: np.ndarray, spool: DiskStore) -> None:
    """Each row's number and key into the bucket of its key range, in the order they came."""
    nb = bounds.size + 1
    for lo in range(0, n, SLICE):
        key = sort_key(c, lo, lo + SLICE)
        which = np.searchsorted(bounds, key, side="right")
        idx = np.argsort(which, kind="stable")
        cuts = np.searchsorted(which[idx], np.arange(nb + 1))
        for b in range(nb):
            part = idx[cuts[b] : cuts[b + 1]]
            if part.size:
                spool.append(f"r{b}", part + lo)
                spool.append(f"k{b}", key[part])


class Moved:
    """The rows' columns in output order, written bucket by bucket into a new store (on
    disk when the source is), and where each wanted source row landed (flow ids)."""

    def __init__(self, src: Store, n: int, wanted: np.ndarray) -> None:
        self.src = src
        self.n = n
        self.names = [m for m in src if not m.startswith("f_")]
        self.wanted = wanted  # sorted distinct source rows whose flow id is asked for
        self.ids = np.zeros(wanted.size, dtype=np.int64)
        self._parts: dict[str, list[np.ndarray]] = {m: [] for m in self.names}
        self._disk = DiskStore() if src.on_disk else None
        # hf_len sums before each slice, for where a row's flat entries start
        self._hf_base = np.zeros(-(-n // SLICE) + 1, dtype=np.int64)
        for k, lo in enumerate(range(0, n, SLICE)):
            self._hf_base[k + 1] = self._hf_base[k] + int(src.slice("hf_len", lo, lo + SLICE).sum())

    def _hf_start(self, row: int) -> int:
        k = row // SLICE
        return int(self._hf_base[k]) + int(self.src.slice("hf_len", k * SLICE, row).sum())

    def run(self) -> Store:
        done = 0
        for rows in ordered(self.src, self.n):
            self._bucket(rows, done)
            done += rows.size
        if self._disk is not None:
            for name in self.names:  # (an empty table still has every column)
                if name not in self._disk:
                    self._disk.append(name, self.src.slice(name, 0, 0))
            return self._disk
        return MemStore({m: _cat(p, self.src, m) for m, p in self._parts.items()})

    def _put(self, name: str, values: np.ndarray) -> None:
        if self._disk is not None:
            self._disk.append(name, values)
        else:
            self._parts[name].append(values)

    def _bucket(self, rows: np.ndarray, done: int) -> None:
        a, b = int(rows.min()), int(rows.max()) + 1
        at = rows - a
        if self.wanted.size:
            hit = np.searchsorted(self.wanted, rows)
            ok = hit < self.wanted.size
            ok[ok] = self.wanted[hit[ok]] == rows[ok]
            self.ids[hit[ok]] = done + 1 + np.flatnonzero(ok)
        lens = self.src.slice("hf_len", a, b)
        for name in self.names:
            if name not in _FLAT:
                self._put(name, self.src.slice(name, a, b)[at])
        starts = np.zeros(lens.size, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        take = lens[at].astype(np.int64)
        total = int(take.sum())
        out_start = np.cumsum(take) - take
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts[at] - out_start, take)
        base = self._hf_start(a)
        span = int(lens.sum())
        for name in _FLAT:
            self._put(name, self.src.slice(name, base, base + span)[idx])

    def flow_ids(self, rows: np.ndarray) -> np.ndarray:
        """The flow id (1-based output position) of each of ``rows`` (all in ``wanted``)."""
        return self.ids[np.searchsorted(self.wanted, rows)]


def _cat(parts: list[np.ndarray], src: Store, name: str) -> np.ndarray:
    if not parts:
        return src.slice(name, 0, 0)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
