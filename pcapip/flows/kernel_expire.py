"""The compiled flow loop's timeouts: which open flows are due to end, as of capture time.

``expire`` keeps a binary heap of (deadline, row, serial) for the flows that
closed or became connection attempts (``pcapip.flows.deadlines`` owns the
arrays); ``deadline`` says when one flow is due.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel, kernel_helper

from .kernel_flow import is_attempt
from .layout import F_CLOSED, F_END, F_FIN_MASK, F_SERIAL, F_STATE, ST_ENDED, ST_OPEN


@kernel_helper
def deadline(S, s, linger, evict_after, attempt):
    """(is flow ``s`` due at all, when): closed in both directions (or reset) ``linger``
    after its last packet, half-closed ``evict_after``, a connection attempt ``attempt``;
    a connection that is not closed has no deadline."""
    if S[s, F_CLOSED] != 0:
        fm = S[s, F_FIN_MASK]
        return True, S[s, F_END] + (linger if ((fm & 4) != 0 or fm == 3) else evict_after)
    if is_attempt(S, s):
        return True, S[s, F_END] + attempt
    return False, 0


@kernel(
    "i8(i8[::1], i8, i8[:, ::1], i8[::1], i8[::1], i8[::1], i8[::1], i8, i8, i8, i8, i8[::1])"
)
def expire(
    ev,
    nev,
    S,
    hd,
    hslot,
    hser,
    hn,
    now,
    linger,
    evict_after,
    attempt,
    out,
):
    """Schedule flows ``ev[:nev]`` (closed, fully closed, or become a connection attempt
    since the last call) and return how many flows are due: closed in both directions (or
    reset) and quiet for ``linger`` ns, half-closed and quiet for ``evict_after`` ns, or a
    connection attempt (``pcapip.flows.attempts.deadline``: SYN or SYN-ACK seen, handshake
    not completed, no payload, not closed) quiet for ``attempt`` ns, as of capture time
    ``now``; their rows are listed in ``out`` and marked ended.

    A binary heap of (deadline, row, serial) ordered by deadline: a deadline is computed
    when scheduled and never later than the flow's real one (a flow's last packet only
    moves later; its delay only shrinks, and then it is scheduled again), so every due
    flow is found by popping only entries that are due, and an entry found early is
    scheduled again with its real deadline.
    """
    size = hn[0]
    nout = 0
    # phase 0: new entries; phase 1: pop due entries; phase 2: re-schedule early ones
    rs = 0  # re-scheduled entries, kept at the end of ``out`` (counted backwards)
    for phase in range(3):
        if phase == 1:
            while size > 0 and hd[0] < now:
                d = hd[0]
                s = hslot[0]
                ser = hser[0]
                # pop: move the last entry to the root and sift it down
                size -= 1
                ld = hd[size]
                ls = hslot[size]
                lser = hser[size]
                q = 0
                while True:
                    c = 2 * q + 1
                    if c >= size:
                        break
                    if c + 1 < size and hd[c + 1] < hd[c]:
                        c += 1
                    if hd[c] >= ld:
                        break
                    hd[q] = hd[c]
                    hslot[q] = hslot[c]
                    hser[q] = hser[c]
                    q = c
                if size > 0:
                    hd[q] = ld
                    hslot[q] = ls
                    hser[q] = lser
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
            continue
        count = nev if phase == 0 else rs
        for e in range(count):
            s = ev[e] if phase == 0 else out[out.shape[0] - 1 - e]
            if S[s, F_STATE] != ST_OPEN:
                continue
            due, d = deadline(S, s, linger, evict_after, attempt)
            if not due:
                continue
            ser = S[s, F_SERIAL]
            # push: append and sift up
            q = size
            size += 1
            while q > 0:
                par = (q - 1) // 2
                if hd[par] <= d:
                    break
                hd[q] = hd[par]
                hslot[q] = hslot[par]
                hser[q] = hser[par]
                q = par
            hd[q] = d
            hslot[q] = s
            hser[q] = ser
    hn[0] = size
    return nout
