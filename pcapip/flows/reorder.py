"""Putting packed rows in order of each flow's first packet: a merge of sorted runs.

Rows are packed in the order flows end; the table numbers them in the order they
began. Sorting ten million rows at once holds a key, a permutation and a moved copy
of each column: hundreds of MB that grow with the capture. But the rows come in
sorted runs (``pcapip.flows.ending.flush`` sorts the flows that end together), so
this is the merge step of an external sort: the output is cut into buckets of about
``SLICE`` rows by key range (bounds from a sample); a bucket's rows are one span of
each run, read span by span, sorted and moved column by column. Memory stays a few
slices whatever the capture's length; rows that come in no order at all (more than
``MAX_RUNS`` runs) are first sorted a slice at a time into a new store, one run each.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pcapip.flows.packed import DiskStore, MemStore
from pcapip.flows.watermark import ORDER_SHIFT

SLICE = 1 << 20  # rows read at a time
MAX_RUNS = 512  # sorted runs merged at once; more are first sorted a slice at a time
_SAMPLE = 64  # one key in this many sets the bucket bounds
_FLAT = ("hf_cap", "hf_frame")  # per-row lists, flat (lengths in hf_len)
_HF_STEP = 4096  # rows between the kept sums of hf_len (where a row's flat entries start)

Store = MemStore | DiskStore
Spans = list[tuple[int, int]]


def sort_key(c: Store, lo: int, hi: int) -> np.ndarray:
    """(capture, first frame) of rows ``lo:hi`` as one int64 (frames below 2**40)."""
    return (c.slice("capture", lo, hi) << ORDER_SHIFT) + c.slice("first_frame", lo, hi)


def in_order(c: Store, n: int) -> bool:
    """Are rows ``0:n`` in the table's order already (``pcapip.flows.ending.flush`` hands
    them out that way when it can)? Then they are the table as they are."""
    prev = None
    for lo in range(0, n, SLICE):
        key = sort_key(c, lo, lo + SLICE)
        if (prev is not None and key[0] < prev) or (key[1:] < key[:-1]).any():
            return False
        prev = key[-1]
    return True


def _runs(c: Store, n: int, most: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(first row of each sorted run and, last, ``n``; the bucket bounds), or None when
    there are more than ``most`` runs."""
    starts = [0]
    sample = []
    prev = None
    for lo in range(0, n, SLICE):
        key = sort_key(c, lo, lo + SLICE)
        if prev is not None and key[0] < prev:
            starts.append(lo)
        down = np.flatnonzero(key[1:] < key[:-1])
        if len(starts) + down.size > most:
            return None
        starts.extend((down + 1 + lo).tolist())
        prev = key[-1]
        sample.append(key[::_SAMPLE])
    step = max(1, SLICE // _SAMPLE)
    bounds = np.sort(np.concatenate(sample))[step::step]
    return np.array([*starts, n], dtype=np.int64), bounds


def _buckets(c: Store, n: int, starts: np.ndarray, bounds: np.ndarray) -> Iterator[Spans]:
    """Each bucket's rows (keys from one bound up to the next) as a span of each run."""
    nb = bounds.size + 1
    runs = starts.size - 1
    cuts = np.empty((runs, nb + 1), dtype=np.int64)
    cuts[:, 0] = starts[:-1]
    cuts[:, 1:] = starts[1:, None]
    r = 0
    for lo in range(0, n, SLICE):
        hi = min(n, lo + SLICE)
        key = sort_key(c, lo, hi)
        while r < runs and starts[r + 1] <= lo:
            r += 1
        k = r
        while k < runs and starts[k] < hi:  # the runs in this slice: where each bound falls
            a, b = max(int(starts[k]), lo), min(int(starts[k + 1]), hi)
            at = np.searchsorted(key[a - lo : b - lo], bounds) + a
            cuts[k, 1:nb] = np.where(at < b, np.minimum(cuts[k, 1:nb], at), cuts[k, 1:nb])
            k += 1
    for b in range(nb):
        spans = [(int(x), int(y)) for x, y in zip(cuts[:, b], cuts[:, b + 1], strict=True)]
        yield [s for s in spans if s[0] < s[1]]


class Moved:
    """The rows' columns in output order, written bucket by bucket into a new store (on
    disk when the source is), and where each wanted source row landed (flow ids)."""

    def __init__(self, src: Store, n: int, wanted: np.ndarray) -> None:
        self.src = src
        self.n = n
        self.names = [m for m in src if not m.startswith("f_")]
        self.wanted = wanted  # sorted distinct source rows whose flow id is asked for
        self.ids = np.zeros(wanted.size, dtype=np.int64)

    def run(self) -> Store:
        src, n = self.src, self.n
        found = _runs(src, n, MAX_RUNS) if n > SLICE else (np.array([0, n]), np.zeros(0, dtype=np.int64))
        wanted = self.wanted
        order = None
        if found is None:  # no order to speak of: sort each slice first (one run each)
            pre = _Writer(src, n, wanted)
            for lo in range(0, n, SLICE):
                pre.bucket([(lo, min(n, lo + SLICE))])
            src = pre.result()
            order = np.argsort(pre.ids)  # where the wanted rows are now, in order
            wanted = pre.ids[order] - 1
            found = _runs(src, n, n)  # (a run per slice at most)
            assert found is not None
        out = _Writer(src, n, wanted)
        for spans in _buckets(src, n, *found):
            if spans:
                out.bucket(spans)
        if src is not self.src and isinstance(src, DiskStore):
            src.close()
        if order is None:
            self.ids = out.ids
        else:
            self.ids[order] = out.ids
        return out.result()

    def flow_ids(self, rows: np.ndarray) -> np.ndarray:
        """The flow id (1-based output position) of each of ``rows`` (all in ``wanted``)."""
        return self.ids[np.searchsorted(self.wanted, rows)]


class _Writer:
    """Rows of ``src`` into a new store, a bucket (spans of source rows) at a time, each
    bucket in order of its keys (ties in the order the rows came)."""

    def __init__(self, src: Store, n: int, wanted: np.ndarray) -> None:
        self.src = src
        self.names = [m for m in src if not m.startswith("f_")]
        self.wanted = wanted
        self.ids = np.zeros(wanted.size, dtype=np.int64)
        self.done = 0
        self._parts: dict[str, list[np.ndarray]] = {m: [] for m in self.names}
        self._disk = DiskStore() if src.on_disk else None
        # sums of hf_len before every _HF_STEP-th row, for where a row's flat entries start
        sums = [0]
        chunk = _HF_STEP * max(1, SLICE // _HF_STEP)
        for lo in range(0, n, chunk):
            lens = src.slice("hf_len", lo, lo + chunk).astype(np.int64)
            step = np.add.reduceat(lens, np.arange(0, lens.size, _HF_STEP))
            sums.extend((np.cumsum(step) + sums[-1]).tolist())
        self._hf_sums = np.array(sums, dtype=np.int64)

    def _hf_start(self, row: int) -> int:
        k = row // _HF_STEP
        base = int(self._hf_sums[k])
        if self._hf_sums[-1] == 0 or row == k * _HF_STEP:
            return base
        return base + int(self.src.slice("hf_len", k * _HF_STEP, row).sum())

    def _read(self, name: str, spans: Spans) -> np.ndarray:
        parts = [self.src.slice(name, a, b) for a, b in spans]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def bucket(self, spans: Spans) -> None:
        rows = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in spans])
        key = np.concatenate([sort_key(self.src, a, b) for a, b in spans])
        at = np.argsort(key, kind="stable")
        del key
        if self.wanted.size:
            got = rows[at]
            hit = np.searchsorted(self.wanted, got)
            ok = hit < self.wanted.size
            ok[ok] = self.wanted[hit[ok]] == got[ok]
            self.ids[hit[ok]] = self.done + 1 + np.flatnonzero(ok)
        self.done += rows.size
        for name in self.names:
            if name in _FLAT:
                continue
            same = self.src.constant(name)
            if same is None:
                self._put(name, self._read(name, spans)[at])
            else:  # (the same value in every row: nothing to read or move)
                self._put(name, np.full(at.size, same, dtype=same.dtype))
        lens = self._read("hf_len", spans)
        starts = np.zeros(lens.size, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        take = lens[at].astype(np.int64)
        total = int(take.sum())
        out_start = np.cumsum(take) - take
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts[at] - out_start, take)
        flat = [(self._hf_start(a), self._hf_start(b)) for a, b in spans] if total else [(0, 0)]
        for name in _FLAT:
            self._put(name, self._read(name, flat)[idx])

    def _put(self, name: str, values: np.ndarray) -> None:
        if self._disk is not None:
            self._disk.append(name, values)
        else:
            self._parts[name].append(values)

    def result(self) -> Store:
        if self._disk is not None:
            for name in self.names:  # (an empty table still has every column)
                if name not in self._disk:
                    self._disk.append(name, self.src.slice(name, 0, 0))
            return self._disk
        return MemStore({m: _cat(p, self.src, m) for m, p in self._parts.items()})


def _cat(parts: list[np.ndarray], src: Store, name: str) -> np.ndarray:
    if not parts:
        return src.slice(name, 0, 0)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
