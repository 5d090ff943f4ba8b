"""Connection attempts that never became connections: their timeout, status and summary.

A SYN flood leaves millions of flows that will never see another packet. Held
until the end of the capture they would make memory grow with the flood, so a
flow that is only an attempt (a SYN or SYN-ACK seen, the handshake not
completed, no payload either way, not closed) ends once it has been quiet for
``ATTEMPT_TIMEOUT`` seconds of capture time, like Zeek's ``tcp_attempt_delay``
(5 s). 5 s outlasts the first two SYN retransmissions of common stacks (1 s
and 3 s later: Linux, Windows), which each restart the wait; an attempt that
resumes after that (a handshake completed more than 5 s after its last SYN)
gets a second, mid-stream row.

The row of such a flow says what happened, mapping Zeek's ``conn_state`` onto
the status column (only where it would otherwise say "absent": a flow that
carried a client keeps "ok"):

* ``unanswered`` (Zeek S0, and RSTOS0): a SYN, nothing back from the other side;
* ``refused`` (Zeek REJ): a SYN answered by a RST;
* ``half-open`` (the server's SYN_RECV state; Zeek S1 with history "Sh"): a SYN
  answered by a SYN-ACK that was never acknowledged (nor reset: a client that
  resets instead keeps "absent").

The table counts them per status (``status_unanswered`` ...) and names the
sources that sent most (:func:`flood_summary`); the report says it in one line
(``pcapip.report.notes.flood_line``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcapip.flows.columns import ATTEMPT_STATUSES
from pcapip.flows.headers import hostport
from pcapip.flows.state import HS_DONE
from pcapip.flows.store import DiskStore

ATTEMPT_TIMEOUT = 5.0
# a capture with at least this many attempts gets the report's flood line
FLOOD_MIN = 100
TOP_SOURCES = 5
SLICE = 1 << 20  # rows of the table read at a time


def is_attempt(closed: bool, hs: int, syn_seen: bool, synack: bool, paid: bool) -> bool:
    """A flow waiting on its handshake (the compiled twin is in ``kernel.expire``)."""
    return not closed and hs != HS_DONE and (syn_seen or synack) and not paid


def attempt_status(
    syn_seen: Any,
    synack: Any,
    hs: Any,
    paid: Any,
    egress_closed: Any,
    origin_closed: Any,
    origin_rst: Any,
) -> Any:
    """Per flow (arrays or scalars): 0 not an attempt, else 1 + index in ATTEMPT_STATUSES.

    ``paid``: payload seen from either side; ``egress_closed``: the side that sent the
    SYN sent a FIN or RST (of the first two closes); ``origin_closed``/``origin_rst``: the
    other side sent a FIN or RST / a RST.
    """
    syn_seen, synack, paid = np.asarray(syn_seen), np.asarray(synack), np.asarray(paid)
    egress_closed = np.asarray(egress_closed)
    origin_closed, origin_rst = np.asarray(origin_closed), np.asarray(origin_rst)
    base = (syn_seen | synack) & ~paid & (np.asarray(hs) != HS_DONE)
    return np.where(
        base & synack & ~egress_closed,
        3,
        np.where(base & origin_rst, 2, np.where(base & ~synack & ~origin_closed & syn_seen, 1, 0)),
    )


@dataclass
class FloodSummary:
    """Attempts in a table: how many per status, from how many sources, which sent most."""

    attempts: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    sources: int = 0  # distinct source (egress) addresses of the attempts
    top: list[tuple[str, int]] = field(default_factory=list)  # (address, attempts), most first
    targets: list[tuple[str, int]] = field(default_factory=list)  # ("ip:port", attempts)


def flood_summary(cols: Any, n: int, codes: dict[str, int], vocab: Any) -> FloodSummary:
    """Count the attempt rows of a table's ``n`` packed rows (``cols``: a MemStore or
    DiskStore; status codes of ``vocab``) and their sources and targets.

    Read SLICE rows at a time. The attempts' source addresses are dealt by a hash into
    about ``n / SLICE`` buckets (temporary files when more than one), each counted on its
    own: what stays in memory is one bucket's distinct sources, whatever the flood's length.
    """
    out = FloodSummary()
    want = [codes[s] for s in ATTEMPT_STATUSES if s in codes]
    if not want or n == 0:
        return out
    per = dict.fromkeys(ATTEMPT_STATUSES, 0)
    buckets = _Buckets(-(-n // SLICE))
    targets: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        for lo in range(0, n, SLICE):
            status = cols.slice("status", lo, lo + SLICE)
            mask = np.isin(status, want)
            if not mask.any():
                continue
            for s in ATTEMPT_STATUSES:
                per[s] += int(np.count_nonzero(status[mask] == codes.get(s, -2)))
            buckets.add(cols.slice("egress_ip", lo, lo + SLICE)[mask])
            # (address code, port) as one int64: IPv4 codes are below 2**32, IPv6 small negatives
            tgt = cols.slice("origin_ip", lo, lo + SLICE)[mask] * 65536
            tgt += cols.slice("origin_port", lo, lo + SLICE)[mask]
            tgt.sort()
            targets.append(_runs(tgt))
        out.by_status = {s: k for s, k in per.items() if k}
        out.attempts = sum(per.values())
        if not out.attempts:
            return out
        name = lambda v: [str(x) for x in vocab.ip_decode(v)]  # noqa: E731
        out.sources, out.top = _merged([_tally(*kc) for kc in buckets.counted()], name)
    finally:
        buckets.close()
    tk = np.concatenate([t[0] for t in targets])
    tc = np.concatenate([t[1] for t in targets])
    order = np.argsort(tk, kind="stable")
    tk, tc = tk[order], tc[order]
    starts = np.flatnonzero(np.concatenate(([True], tk[1:] != tk[:-1])))

    def hostports(keys: np.ndarray) -> list[str]:
        ips = vocab.ip_decode(keys // 65536)
        ports = (keys % 65536).tolist()
        return [hostport(str(ip), p) for ip, p in zip(ips, ports, strict=True)]

    out.targets = _top(tk[starts], np.add.reduceat(tc, starts), hostports)
    return out


class _Buckets:
    """Values dealt by a hash into ``k`` buckets: in memory when ``k`` is 1, else a column
    each of one temporary store; :meth:`counted` gives each bucket's distinct values and
    counts."""

    def __init__(self, k: int) -> None:
        self.k = max(1, k)
        self.mem: list[np.ndarray] = []
        self.store = DiskStore()

    def add(self, v: np.ndarray) -> None:
        if self.k == 1:
            self.mem.append(v)
            return
        h = (v.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        which = (h % np.uint64(self.k)).astype(np.intp)
        v = v.astype(np.int64, copy=False)
        for b in range(self.k):  # (a pass per bucket: fewer than a sort of the slice costs)
            part = v[which == b]
            if part.size:
                self.store.append(str(b), part)

    def counted(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.k == 1:
            if self.mem:
                yield _counts(np.concatenate(self.mem))
            return
        for b in range(self.k):
            name, parts = str(b), []
            for lo in range(0, self.store.size(name), SLICE):
                parts.append(_counts(self.store.slice(name, lo, lo + SLICE)))
            if parts:
                yield _summed(parts)

    def close(self) -> None:
        self.store.close()
        self.mem = []


def _counts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``v`` (sorted) and how often each occurs."""
    return _runs(np.sort(v))


def _summed(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    keys = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[starts], np.add.reduceat(counts, starts)


def _tally(keys: np.ndarray, counts: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One bucket's distinct count, its TOP_SOURCES most repeated values (most first, the
    smaller value first among equals) with their counts, and its smallest values (each as
    often as it occurs, up to 3 * TOP_SOURCES): enough to merge buckets exactly."""
    rep = counts > 1
    k, c = keys[rep], counts[rep]
    pick = np.argsort(-c, kind="stable")[:TOP_SOURCES]
    m = 3 * TOP_SOURCES
    low = np.repeat(keys[:m], np.minimum(counts[:m], m))[:m]
    return keys.size, k[pick], c[pick], low


def _merged(tallies: list[Any], name: Any) -> tuple[int, list[tuple[str, int]]]:
    """Distinct values over all buckets and the TOP_SOURCES most frequent: the repeated
    ones first, then values seen once, smallest first (buckets hold disjoint values)."""
    if not tallies:
        return 0, []
    distinct = sum(t[0] for t in tallies)
    keys = np.concatenate([t[1] for t in tallies])
    counts = np.concatenate([t[2] for t in tallies])
    order = np.argsort(keys, kind="stable")
    top = _top(keys[order], counts[order], name) if keys.size else []
    if len(top) < TOP_SOURCES:  # then values seen once, in order
        low = np.sort(np.concatenate([t[3] for t in tallies]))
        seen = {k for k, _ in top}
        for k in name(low[: TOP_SOURCES * 2 + len(top)]):
            if len(top) >= TOP_SOURCES:
                break
            if k not in seen:
                seen.add(k)
                top.append((k, 1))
    return distinct, top


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.concatenate((starts, [sorted_values.size])))
    return sorted_values[starts], counts


def _top(keys: np.ndarray, counts: np.ndarray, name: Any) -> list[tuple[str, int]]:
    k = min(TOP_SOURCES, keys.size)
    pick = np.argsort(-counts, kind="stable")[:k]
    return list(zip(name(keys[pick]), counts[pick].tolist(), strict=True))
