"""TOA options in the compiled flow loop: find one clean TOA client and keep it in the row.

The loop reads a TOA option itself only when it is the one TOA-kind option of
a clean walk, from the egress, and names the flow's current client (or the
first); anything else goes to the Python rules.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel_helper
from pcapip.sources.kernel_bytes import be16, be32

from .layout import (
    F_EGRESS,
    F_EXTRA,
    F_HS_TOA,
    T_CAP,
    T_FRAME,
    T_IP,
    T_KIND,
    T_LEN,
    T_PORT,
    T_VAR,
    TA_SET,
    TD_SET,
    TS_SET,
    XBASE,
)


@kernel_helper
def lone_toa_option(data, o, ocap, toa_mask):
    """Where the one TOA-kind option of the ``ocap`` option bytes at ``o`` starts, or -1:
    none, several, or a walk that is not clean (cut, bad length, bytes after EOL)."""
    j = 0
    found = -1
    while j < ocap:
        kd = data[o + j]
        if kd == 0:
            for z in range(j + 1, ocap):
                if data[o + z] != 0:
                    return -1
            break
        if kd == 1:
            j += 1
            continue
        if j + 1 >= ocap:
            return -1
        ln = data[o + j + 1]
        if ln < 2 or j + ln > ocap:
            return -1
        if toa_mask[kd]:
            if found >= 0:
                return -1
            found = j
        j += ln
    return found


@kernel_helper
def toa_client(data, b, toa_var):
    """The client of the TOA option at ``b``: (kind, variant, port, IPv4). The variant is -1
    unless it is a port+IPv4 client variant with a port and an address, and not an
    experiment-id option (RFC 6994) that only looks like one: what ``pcapip.dissect.
    tcp_options`` reads as a clean client (``tests/test_flows_kernel_reads.py`` holds the
    two together)."""
    kind = data[b] * 1
    var = -1
    if data[b + 1] == 8:
        var = toa_var[kind]
    port = be16(data, b + 2)
    ip = be32(data, b + 4)
    if var < 0 or port == 0 or ip == 0:
        var = -1
    elif kind == 253 or kind == 254:
        exid = be32(data, b + 2)
        if port == 0xF989 or exid == 0xE2D4C3D9:
            var = -1
    return kind, var, port, ip


@kernel_helper
def toa_differs(X, s, ip, port):
    """True when flow ``s`` holds a TOA client other than (ip, port): that needs a finding."""
    cur = -1
    if X[s, TA_SET - XBASE] != 0:
        cur = TA_SET - XBASE
    elif X[s, TS_SET - XBASE] != 0:
        cur = TS_SET - XBASE
    elif X[s, TD_SET - XBASE] != 0:
        cur = TD_SET - XBASE
    return cur >= 0 and (X[s, cur + T_IP] != ip or X[s, cur + T_PORT] != port)


@kernel_helper
def toa_rule(S, X, s, side, egress, data, o, ocap, ol, toa):
    """The options (``ocap`` of ``ol`` bytes captured, at ``o``) of a packet whose option
    walk found a TOA kind: its clean TOA as toa_client gives it, or a variant of -1 when
    Python must apply the packet: the flow has Python state, the packet is not from the
    egress, the options are cut or not one clean TOA, or it names another client than the
    flow's current one (that needs a finding)."""
    toa_mask, toa_var = toa
    kind = port = ip = 0
    var = -1
    if S[s, F_EXTRA] == 0 and (egress < 0 or side == egress) and ocap >= ol:
        at = lone_toa_option(data, o, ocap, toa_mask)
        if at >= 0:
            kind, var, port, ip = toa_client(data, o + at, toa_var)
        if var >= 0 and toa_differs(X, s, ip, port):
            var = -1
    return kind, var, port, ip


@kernel_helper
def apply_toa(S, X, s, side, pure_syn, is_hs, toa, fr, capture):
    """Keep a clean TOA (kind, variant, port, IPv4) in the flow's SYN, handshake-ACK or
    data slot (the first of each); without an egress yet, its sender is the egress."""
    if S[s, F_EGRESS] < 0:
        S[s, F_EGRESS] = side
    g = -1
    if pure_syn:
        if X[s, TS_SET - XBASE] == 0:
            g = TS_SET - XBASE
    elif is_hs:
        g = TA_SET - XBASE
        S[s, F_HS_TOA] = 1
    elif X[s, TD_SET - XBASE] == 0:
        g = TD_SET - XBASE
    if g >= 0:
        kind, var, port, ip = toa
        X[s, g] = 1
        X[s, g + T_IP] = ip
        X[s, g + T_PORT] = port
        X[s, g + T_KIND] = kind
        X[s, g + T_LEN] = 8
        X[s, g + T_VAR] = var
        X[s, g + T_FRAME] = fr
        X[s, g + T_CAP] = capture
