"""The interval join: a log record (egress ip, port if logged, time window) -> the
connection of the capture it came from, for all records at once.

A record's window is ``[lo, hi]``: from its time (less the request's duration when the
log gives it) to its time plus the log's time step (nginx's ``$time_local`` is cut to the
second, so a request logged at 14:03:07 ended in [14:03:07, 14:03:08)). The candidates
are the connections from the record's egress key whose lifetime ``[start, end]`` meets
that window; if none does, the window widened by ``tolerance`` on both sides (clock and
logging delay). One candidate: it is the record's connection; several: ambiguous, no
client; none: none.

Counting the connections that meet a window is two binary searches per record over the
connections sorted by (key, start) and by (key, end): those started by ``hi`` less those
ended before ``lo``. When exactly one is left, it is the one with the latest end among
those started by ``hi`` (a running maximum per key). So the join costs sorting, never
records times connections. Times are replaced by their ranks among the connections' times
first (:func:`_rank`), so a key and a time pack into one int64 that sorts by key, then time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Connections:
    """The capture's connections a record may come from: an int64 key each (equal keys:
    the same egress), first and last packet in UTC nanoseconds; ``rows``: their positions
    in the flow table."""

    key: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rows: np.ndarray


@dataclass(frozen=True)
class Found:
    """Per record: candidates (connections meeting its window) and, where that is exactly
    one, its position in the flow table (-1 otherwise)."""

    candidates: np.ndarray
    row: np.ndarray


def _pack(key: np.ndarray, rank: np.ndarray, span: int) -> np.ndarray:
    return key.astype(np.int64) * span + rank


def _rank(uniq: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Times as ranks that keep their order and equality with every connection time
    (``uniq``, sorted): ``uniq[i]`` is 2i+1, a time between ``uniq[i-1]`` and ``uniq[i]``
    2i. Records are only ever compared with connections, so their own times need no rank
    among themselves (a sort of the connections' times, not of the records')."""
    i = np.searchsorted(uniq, t, "left")
    hit = uniq[np.minimum(i, len(uniq) - 1)] == t
    return 2 * i + hit


def meeting(conns: Connections, key: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Found:
    """For each record (``key``, window ``[lo, hi]``; key -1: no connection has it, or the
    record is not asked about), the connections whose lifetime meets the window."""
    known = np.flatnonzero(key >= 0)
    if len(known) < len(key):  # a record no connection can have meets none
        sub = meeting(conns, key[known], lo[known], hi[known])
        count, row = np.zeros(len(key), np.int64), np.full(len(key), -1, np.int64)
        count[known], row[known] = sub.candidates, sub.row
        return Found(count, row)
    n = len(key)
    if n == 0 or len(conns.key) == 0:
        return Found(np.zeros(n, np.int64), np.full(n, -1, np.int64))
    uniq = np.unique(np.concatenate([conns.start, conns.end]))
    m = len(conns.key)
    r_start, r_end = _rank(uniq, conns.start), _rank(uniq, conns.end)
    r_lo, r_hi = _rank(uniq, lo), _rank(uniq, hi)
    span = 2 * len(uniq) + 2
    by_start = _pack(conns.key, r_start, span)
    order = np.argsort(by_start, kind="stable")
    by_start = by_start[order]
    ends_sorted = np.sort(_pack(conns.key, r_end, span))
    # those of the key started by hi, less those of the key ended before lo (both counts
    # include the connections of smaller keys: they cancel out)
    started = np.searchsorted(by_start, _pack(key, r_hi, span), "right")
    ended = np.searchsorted(ends_sorted, _pack(key, r_lo, span), "left")
    count = (started - ended).astype(np.int64)
    # the latest-ending connection among each key's first i (in start order)
    end_packed = _pack(conns.key[order], r_end[order], span)
    best = np.maximum.accumulate(end_packed)
    at = np.maximum.accumulate(np.where(end_packed == best, np.arange(m), 0))
    one = count == 1
    row = np.full(n, -1, np.int64)
    row[one] = conns.rows[order[at[started[one] - 1]]]
    return Found(count, row)


def match(
    conns: Connections, key: np.ndarray, lo: np.ndarray, hi: np.ndarray, tolerance: int
) -> Found:
    """The window's own candidates; for records with none, those of the window widened by
    ``tolerance`` nanoseconds on each side."""
    strict = meeting(conns, key, lo, hi)
    retry = np.flatnonzero(strict.candidates == 0)
    if tolerance <= 0 or len(retry) == 0:
        return strict
    loose = meeting(conns, key[retry], lo[retry] - tolerance, hi[retry] + tolerance)
    candidates, row = strict.candidates.copy(), strict.row.copy()
    candidates[retry] = loose.candidates
    row[retry] = loose.row
    return Found(candidates, row)
