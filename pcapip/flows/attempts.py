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

from pcapip.flows.state import HS_DONE

ATTEMPT_TIMEOUT = 5.0
ATTEMPT_STATUSES = ("unanswered", "refused", "half-open")
# a capture with at least this many attempts gets the report's flood line
FLOOD_MIN = 100
TOP_SOURCES = 5


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


def flood_summary(
    status: np.ndarray,
    egress_ip: np.ndarray,
    origin_ip: np.ndarray,
    origin_port: np.ndarray,
    codes: dict[str, int],
    vocab: Any,
) -> FloodSummary:
    """Count the attempt rows of a table (status codes of ``vocab``) and their sources.

    Called with one table's columns (8 bytes per flow each): memory is that of the
    columns, not of a Python object per attempt.
    """
    out = FloodSummary()
    want = [codes[s] for s in ATTEMPT_STATUSES if s in codes]
    if not want:
        return out
    mask = np.isin(status, want)
    out.attempts = int(np.count_nonzero(mask))
    if out.attempts == 0:
        return out
    picked = status[mask]
    for s in ATTEMPT_STATUSES:
        n = int(np.count_nonzero(picked == codes.get(s, -2)))
        if n:
            out.by_status[s] = n
    del picked
    src = egress_ip[mask]
    src.sort()
    uniq, counts = _runs(src)
    del src
    out.sources = int(uniq.size)
    out.top = _top(uniq, counts, lambda ips: [str(x) for x in vocab.ip_decode(ips)])
    del uniq, counts
    # (address code, port) as one int64: IPv4 codes are below 2**32, IPv6 ones small negatives
    tgt = origin_ip[mask] * 65536 + origin_port[mask]
    tgt.sort()
    tu, tc = _runs(tgt)
    del tgt

    def name(keys: np.ndarray) -> list[str]:
        ips = vocab.ip_decode(keys // 65536)
        ports = (keys % 65536).tolist()
        return [_hostport(str(ip), p) for ip, p in zip(ips, ports, strict=True)]

    out.targets = _top(tu, tc, name)
    return out


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

