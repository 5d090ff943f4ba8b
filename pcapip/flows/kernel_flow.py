"""A flow's row through its life in the compiled loop: started, counted, its handshake,
closed, ended. Each helper applies one rule of ``pcapip.flows.machine`` to the row."""

from __future__ import annotations

from pcapip.sources.accel import kernel_helper
from pcapip.sources.kernel_bytes import INT64_MAX, M32

from .kernel_keys import store_key
from .kernel_out import (
    CT_CLOSES,
    CT_ENDED,
    CT_EVENTS,
    CT_FREE_TOP,
    CT_OPEN,
    CT_SERIAL,
    OUT_ENDED,
    OUT_EVENTS,
    push,
)
from .layout import (
    C0_CAP,
    C0_FRAME,
    C0_P0,
    C0_P1,
    C0_RST,
    C0_SIDE,
    CLOSE_WIDTH,
    F_BYTES,
    F_CAPTURE,
    F_CLOSE_ORDER,
    F_CLOSED,
    F_EGRESS,
    F_END,
    F_FIN_MASK,
    F_FIRST_FRAME,
    F_FIRST_SIDE,
    F_HS,
    F_HS_CAPTURE,
    F_HS_FRAME,
    F_HS_OPT_LEN,
    F_ISN0,
    F_NCLOSES,
    F_PACKETS,
    F_PAY0,
    F_SERIAL,
    F_SETTLED,
    F_START,
    F_STATE,
    F_SYN_SEQ,
    F_SYNACK,
    F_TUN_TEXT,
    ST_ENDED,
)
from .state import HS_DONE, HS_FAILED, HS_NONE, HS_PENDING


@kernel_helper
def new_flow(S, free, tmpl, ct, h, key, side, first):
    """Start a flow with key ``key`` in a free row (row s of X is a zero row: rows are
    freed with X cleared); ``first``: its first packet's frame, time, capture and tunnel
    column (flows/tunnels.py). The caller puts it in the index."""
    fr, tns, capture, tunnel_text = first
    top = ct[CT_FREE_TOP] - 1
    s = free[top]
    ct[CT_FREE_TOP] = top
    row = S[s]
    for z in range(tmpl.shape[0]):  # (a slice assignment would need numba's allocator)
        row[z] = tmpl[z]
    store_key(S, s, h, key)
    ser = ct[CT_SERIAL] + 1
    ct[CT_SERIAL] = ser
    S[s, F_SERIAL] = ser
    S[s, F_CAPTURE] = capture
    S[s, F_FIRST_FRAME] = fr
    S[s, F_START] = tns
    S[s, F_END] = tns
    S[s, F_FIRST_SIDE] = side
    S[s, F_TUN_TEXT] = tunnel_text
    ct[CT_OPEN] += 1
    return s


@kernel_helper
def end_flow(S, s, out, ct):
    """End flow ``s`` (its row stays in the index until Python has read it)."""
    S[s, F_STATE] = ST_ENDED
    push(out, ct, CT_ENDED, OUT_ENDED, s)
    ct[CT_OPEN] -= 1


@kernel_helper
def starts_anew(S, s, pure_syn, sq, tns, attempt_ns):
    """True when the packet starts a new connection on flow ``s``'s 4-tuple: a SYN on a
    closed flow or with another sequence number, or any packet after an attempt quiet past
    its timeout (over whenever eviction runs, so batch boundaries never change the rows)."""
    if pure_syn and (S[s, F_CLOSED] != 0 or (S[s, F_SYN_SEQ] >= 0 and sq != S[s, F_SYN_SEQ])):
        return True
    return S[s, F_CLOSED] == 0 and is_attempt(S, s) and later(S[s, F_END], attempt_ns) < tns


@kernel_helper
def later(t, wait):
    """``t`` + ``wait`` (>= 0) nanoseconds, at most INT64_MAX: a time a damaged capture
    saturated must not wrap into the past."""
    if t > INT64_MAX - wait:
        return INT64_MAX
    return t + wait


@kernel_helper
def lost_start(S, s, side, egress, isn, sq, f, pl):
    """A FIN (flags ``f``, no payload: ``pl`` 0) from the egress (sequence number ``sq``,
    ISN ``isn``) with no payload seen from it, yet past its SYN: it sent bytes the capture
    does not hold. The rules then call the stream's start lost (``Machine.tcp``), so the
    loop hands the packet over."""
    return (
        (f & 5) == 1
        and pl == 0
        and S[s, F_SETTLED] == 0
        and egress == side
        and isn >= 0
        and S[s, F_PAY0 + side] == 0
        and ((sq - isn - 1) & M32) != 0
    )


@kernel_helper
def is_attempt(S, s):
    """True while flow ``s`` is a connection attempt (``pcapip.flows.attempts``): SYN or
    SYN-ACK seen, handshake not completed, no payload either way."""
    return (
        S[s, F_HS] != HS_DONE
        and (S[s, F_SYN_SEQ] >= 0 or S[s, F_SYNACK] != 0)
        and S[s, F_PAY0] == 0
        and S[s, F_PAY0 + 1] == 0
    )


@kernel_helper
def count_packet(S, s, size, tns):
    S[s, F_PACKETS] += 1
    S[s, F_BYTES] += size
    if tns < S[s, F_START]:
        S[s, F_START] = tns
    if tns > S[s, F_END]:
        S[s, F_END] = tns


@kernel_helper
def syn_effect(S, s, side, pure_syn, syn, sq):
    """What the SYN / SYN-ACK rules will make of the packet, before anything changes:
    (the egress side after them, this side's ISN after them, is it the handshake's ACK)."""
    egress = S[s, F_EGRESS]
    e1 = egress
    isn_s = S[s, F_ISN0 + side]
    is_hs = False
    if pure_syn:
        if S[s, F_SYN_SEQ] < 0:
            e1 = side
            isn_s = sq
    elif syn:
        if S[s, F_SYNACK] == 0:
            isn_s = sq
            if S[s, F_SYN_SEQ] < 0:
                e1 = 1 - side
    elif S[s, F_HS] == HS_PENDING and side == egress:
        is_hs = True
    return e1, isn_s, is_hs


@kernel_helper
def apply_syn(S, s, side, sq):
    """The first SYN: its sender is the egress; True when the flow became an attempt."""
    if S[s, F_SYN_SEQ] >= 0:
        return False
    S[s, F_SYN_SEQ] = sq
    S[s, F_ISN0 + side] = sq
    S[s, F_EGRESS] = side
    if S[s, F_HS] != HS_NONE:
        return False
    S[s, F_HS] = HS_PENDING
    return True


@kernel_helper
def apply_synack(S, s, side, sq, ak):
    """The first SYN-ACK; without a SYN seen, its receiver is the egress: True when the
    flow became an attempt."""
    if S[s, F_SYNACK] != 0:
        return False
    S[s, F_SYNACK] = 1
    S[s, F_ISN0 + side] = sq
    if S[s, F_SYN_SEQ] >= 0:
        return False
    S[s, F_EGRESS] = 1 - side
    S[s, F_ISN0 + 1 - side] = (ak - 1) & M32
    if S[s, F_HS] != HS_NONE:
        return False
    S[s, F_HS] = HS_PENDING
    return True


@kernel_helper
def end_handshake(S, s, done, fr, capture, ol):
    """The egress's answer to the SYN-ACK: the handshake done (an ACK) or failed."""
    S[s, F_HS] = HS_DONE if done else HS_FAILED
    S[s, F_HS_FRAME] = fr
    S[s, F_HS_CAPTURE] = capture
    S[s, F_HS_OPT_LEN] = ol


@kernel_helper
def apply_close(S, s, side, rst, fr, capture, out, ct):
    """A FIN or RST: note the first two, close the flow; its first close, and the one that
    closes it fully, schedule it for eviction."""
    nc = S[s, F_NCLOSES]
    if nc < 2:
        cb = C0_SIDE + nc * CLOSE_WIDTH
        S[s, cb] = side
        S[s, cb + (C0_RST - C0_SIDE)] = 1 if rst else 0
        S[s, cb + (C0_FRAME - C0_SIDE)] = fr
        S[s, cb + (C0_CAP - C0_SIDE)] = capture
        S[s, cb + (C0_P0 - C0_SIDE)] = S[s, F_PAY0]
        S[s, cb + (C0_P1 - C0_SIDE)] = S[s, F_PAY0 + 1]
        S[s, F_NCLOSES] = nc + 1
    fm = S[s, F_FIN_MASK]
    was_done = (fm & 4) != 0 or fm == 3
    fm = fm | (4 if rst else (1 if side == 0 else 2))
    S[s, F_FIN_MASK] = fm
    now_done = (fm & 4) != 0 or fm == 3
    if S[s, F_CLOSED] == 0:
        S[s, F_CLOSED] = 1
        co = ct[CT_CLOSES] + 1
        ct[CT_CLOSES] = co
        S[s, F_CLOSE_ORDER] = co
        push(out, ct, CT_EVENTS, OUT_EVENTS, s)
    elif now_done and not was_done:
        push(out, ct, CT_EVENTS, OUT_EVENTS, s)
