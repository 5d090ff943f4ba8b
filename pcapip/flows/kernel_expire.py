"""The compiled flow loop's timeouts: which open flows are due to end, as of capture time.

``expire`` keeps (deadline, row, serial) for the flows that closed or became
connection attempts in deadline order, in a queue and a binary heap
(``pcapip.flows.deadlines`` owns the arrays); ``deadline`` says when one flow is due.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper
from pcapip.sources.kernel_hint import AHEAD, prefetch_row

from .kernel_flow import is_attempt, later
from .layout import F_CLOSED, F_END, F_FIN_MASK, F_SERIAL, F_STATE, ST_ENDED, ST_OPEN


@kernel_helper
def deadline(S, s, linger, evict_after, attempt):
    """(is flow ``s`` due at all, when): closed in both directions (or reset) ``linger``
    after its last packet, half-closed ``evict_after``, a connection attempt ``attempt``;
    a connection that is not closed has no deadline."""
    if S[s, F_CLOSED] != 0:
        fm = S[s, F_FIN_MASK]
        return True, later(S[s, F_END], linger if ((fm & 4) != 0 or fm == 3) else evict_after)
    if is_attempt(S, s):
        return True, later(S[s, F_END], attempt)
    return False, 0


@kernel_helper
def schedule(hp, fq, hn, d, s, ser, attempt):
    """Add (deadline ``d``, row ``s``, serial ``ser``): an ``attempt``'s to the end of the
    ring queue ``fq`` when no earlier than its last entry (attempts arrive in the order
    they time out; a closed flow's deadline, seconds or minutes off, would hold the
    queue's end far ahead), else to the binary heap ``hp``; ``hn``: heap size, queue
    head, queue length."""
    cap = fq.shape[1]
    head, count = hn[1], hn[2]
    if attempt and (count == 0 or d >= fq[0, (head + count - 1) % cap]):
        at = (head + count) % cap
        fq[0, at] = d
        fq[1, at] = s
        fq[2, at] = ser
        hn[2] = count + 1
        return
    q = hn[0]  # push on the heap: append and sift up
    hn[0] = q + 1
    while q > 0:
        par = (q - 1) // 2
        if hp[0, par] <= d:
            break
        for f in range(3):
            hp[f, q] = hp[f, par]
        q = par
    hp[0, q] = d
    hp[1, q] = s
    hp[2, q] = ser


@kernel_helper
def take_first(hp, fq, hn, now):
    """Remove and return the earliest (deadline, row, serial) if its deadline is before
    ``now``, else (0, -1, 0)."""
    size, head, count = hn[0], hn[1], hn[2]
    if count > 0 and (size == 0 or fq[0, head] <= hp[0, 0]):
        if fq[0, head] >= now:
            return 0, -1, 0
        hn[1] = (head + 1) % fq.shape[1]
        hn[2] = count - 1
        return fq[0, head], fq[1, head], fq[2, head]
    if size == 0 or hp[0, 0] >= now:
        return 0, -1, 0
    d, s, ser = hp[0, 0], hp[1, 0], hp[2, 0]
    size -= 1  # pop: move the last entry to the root and sift it down
    hn[0] = size
    ld = hp[0, size]
    q = 0
    while True:
        c = 2 * q + 1
        if c >= size:
            break
        if c + 1 < size and hp[0, c + 1] < hp[0, c]:
            c += 1
        if hp[0, c] >= ld:
            break
        for f in range(3):
            hp[f, q] = hp[f, c]
        q = c
    if size > 0:
        for f in range(3):
            hp[f, q] = hp[f, size]
    return d, s, ser


@kernel(
    "i8(i8[::1], i8, i8[:, ::1], Tuple((i8[:, ::1], i8[:, ::1], i8[::1])), i8, "
    "UniTuple(i8, 3), i8[::1])"
)
def expire(ev, nev, S, queues, now, waits, out):
    """Schedule flows ``ev[:nev]`` (closed, fully closed, or become a connection attempt
    since the last call) and return how many flows are due, as of capture time ``now``;
    ``waits`` (linger, evict_after, attempt) in ns: closed in both directions (or reset)
    and quiet for ``linger``, half-closed and quiet for ``evict_after``, or a connection
    attempt (``pcapip.flows.attempts.deadline``: SYN or SYN-ACK seen, handshake not
    completed, no payload, not closed) quiet for ``attempt``; their rows are listed in
    ``out`` and marked ended.

    Entries (deadline, row, serial) are kept in deadline order by ``queues``: a ring queue
    (``fq``: attempts scheduled no earlier than the queue's last, a flood's nearly all) and
    a binary heap (``hp``: the others), ``hn`` their sizes (see :func:`schedule`); each must
    have room for its entries and ``nev`` more. A deadline is
    computed when scheduled and never later than the flow's real one (a flow's last packet
    only moves later; its delay only shrinks, and then it is scheduled again), so every due
    flow is found by taking only entries that are due, and an entry found early is
    scheduled again with its real deadline.
    """
    hp, fq, hn = queues
    linger, evict_after, attempt = waits
    nout = 0
    rs = 0  # re-scheduled entries, kept at the end of ``out`` (counted backwards)
    for e in range(nev):
        if e + AHEAD < nev:  # (rows of a whole batch of packets: mostly out of the cache)
            prefetch_row(S, ev[e + AHEAD])
        s = ev[e]
        if S[s, F_STATE] == ST_OPEN:
            due, d = deadline(S, s, linger, evict_after, attempt)
            if due:
                schedule(hp, fq, hn, d, s, S[s, F_SERIAL], S[s, F_CLOSED] == 0)
    while True:
        if hn[2] > AHEAD:  # a flood's attempts time out from the queue, their rows long cold
            prefetch_row(S, fq[1, (hn[1] + AHEAD) % fq.shape[1]])
        d, s, ser = take_first(hp, fq, hn, now)
        if s < 0:
            break
        if S[s, F_STATE] != ST_OPEN or S[s, F_SERIAL] != ser:
            continue  # ended already (or the row holds another flow now)
        due, real = deadline(S, s, linger, evict_after, attempt)
        if not due:
            continue  # an attempt that became a connection: no deadline
        if real < now:
            S[s, F_STATE] = ST_ENDED
            out[nout] = s
            nout += 1
        elif real > d:
            rs += 1
            out[out.shape[0] - rs] = s
    for e in range(rs):
        s = out[out.shape[0] - 1 - e]
        due, d = deadline(S, s, linger, evict_after, attempt)
        if due:
            schedule(hp, fq, hn, d, s, S[s, F_SERIAL], S[s, F_CLOSED] == 0)
    return nout
