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
(:func:`flood_line`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcapip.flows.columns import ATTEMPT_STATUSES
from pcapip.flows.state import HS_DONE

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
        np.where(
            base & origin_rst, 2, np.where(base & ~synack & ~origin_closed & syn_seen, 1, 0)
        ),
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

    Read SLICE rows at a time: what stays is the source address of each attempt (8
    bytes) and one byte per attempt while they are counted, not a column of the table.
    """
    out = FloodSummary()
    want = [codes[s] for s in ATTEMPT_STATUSES if s in codes]
    if not want or n == 0:
        return out
    per = dict.fromkeys(ATTEMPT_STATUSES, 0)
    srcs: list[np.ndarray] = []
    targets: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, n, SLICE):
        status = cols.slice("status", lo, lo + SLICE)
        mask = np.isin(status, want)
        if not mask.any():
            continue
        for s in ATTEMPT_STATUSES:
            per[s] += int(np.count_nonzero(status[mask] == codes.get(s, -2)))
        srcs.append(cols.slice("egress_ip", lo, lo + SLICE)[mask])
        # (address code, port) as one int64: IPv4 codes are below 2**32, IPv6 small negatives
        tgt = cols.slice("origin_ip", lo, lo + SLICE)[mask] * 65536
        tgt += cols.slice("origin_port", lo, lo + SLICE)[mask]
        tgt.sort()
        targets.append(_runs(tgt))
    out.by_status = {s: k for s, k in per.items() if k}
    out.attempts = sum(per.values())
    if not out.attempts:
        return out
    src = np.concatenate(srcs) if len(srcs) > 1 else srcs[0]
    del srcs
    src.sort()
    out.sources, out.top = _distinct_top(src, lambda v: [str(x) for x in vocab.ip_decode(v)])
    del src
    tk = np.concatenate([t[0] for t in targets])
    tc = np.concatenate([t[1] for t in targets])
    order = np.argsort(tk, kind="stable")
    tk, tc = tk[order], tc[order]
    starts = np.flatnonzero(np.concatenate(([True], tk[1:] != tk[:-1])))

    def name(keys: np.ndarray) -> list[str]:
        ips = vocab.ip_decode(keys // 65536)
        ports = (keys % 65536).tolist()
        return [_hostport(str(ip), p) for ip, p in zip(ips, ports, strict=True)]

    out.targets = _top(tk[starts], np.add.reduceat(tc, starts), name)
    return out


def _distinct_top(v: np.ndarray, name: Any) -> tuple[int, list[tuple[str, int]]]:
    """Distinct values of sorted ``v`` and the TOP_SOURCES most frequent, without a
    count per distinct value: in a spoofed flood nearly every source is distinct, so
    only the repeated values are counted."""
    if v.size == 0:
        return 0, []
    same = v[1:] == v[:-1]
    distinct = int(v.size - np.count_nonzero(same))
    rep = v[1:][same]  # each repeated value, once per repetition
    del same
    if rep.size:
        keys, counts = _runs(rep)
        top = _top(keys, counts + 1, name)
    else:
        top = []
    if len(top) < TOP_SOURCES:  # then values seen once, in order
        seen = {k for k, _ in top}
        for k in name(v[: TOP_SOURCES * 2 + len(top)]):
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


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def flood_line(f: FloodSummary | None, shown: int = 3) -> str | None:
    """The report's line when many connection attempts went unanswered (a SYN flood?)."""
    if f is None or f.attempts < FLOOD_MIN:
        return None
    parts = ", ".join(f"{n} {s}" for s, n in f.by_status.items())
    top = ", ".join(f"{ip} ({n})" for ip, n in f.top[:shown])
    to = f" to {f.targets[0][0]}" if f.targets and f.targets[0][1] * 2 > f.attempts else ""
    return (
        f"SYN flood? {f.attempts} connection attempts never completed{to} ({parts}), from "
        f"{f.sources} source addresses, most from {top}"
    )

