"""A flow of the compiled table as a TcpFlow, and back.

The per-packet rules (``pcapip.flows.machine``) work on TcpFlow objects; the
compiled loop on rows of the int64 table (``pcapip.flows.layout``). A packet
handed over is applied to the TcpFlow built from its flow's row, which is
then written back: the row stays the authority for every scalar fact, and
the object is kept (``table.extra``) only for what only Python holds.

The copying of the scalar facts is generated from the layout's declaration
(``layout.ATTRS``, like dpkt's ``__hdr__``); what is not a plain scalar has a
rule here: the key, the first two closes, the first payload bytes, the TOA
options the loop read, the PROXY header it read. Every other TcpFlow
attribute is Python-only state (:data:`PYTHON_ONLY`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from pcapip.flows import layout as L
from pcapip.flows.plainheader import row_header
from pcapip.flows.state import TcpFlow, ToaSeen


class TcpTable(Protocol):
    """What the copy reads and writes of the TCP table (``pcapip.flows.tcptable``, which
    imports this module): its three arrays and the Python-only state beside them."""

    S: np.ndarray  # the fields every flow writes (layout.XBASE of them)
    X: np.ndarray  # the fields only a flow with a TOA option or a PROXY header writes
    P: np.ndarray  # first payload bytes, PAYLOAD_KEEP per side
    extra: dict[int, TcpFlow]  # row -> the TcpFlow of a flow with Python-only state
    headers: dict[int, Any]  # row -> HeaderSeen read from its first segment
    var_names: list[str | None]  # TOA variant names, by the loop's variant index

_MASK64 = (1 << 64) - 1
# TcpFlow attributes with a rule of their own here
RULES = (
    "key", "serial", "closes", "first_pay", "header", "toa_syn", "toa_ack", "toa_data", "tunnel",
)  # fmt: skip
# TcpFlow attributes the table does not hold: a flow with any of them set keeps its object
PYTHON_ONLY = (
    "findings",
    "seen_codes",
    "streams",
    "stacked",
    "toa_bad",
    "toa_cut",
    "incomplete",
    "gap",
    "base",
    "noheader",
)
_TOAS = ((L.TS_SET, "toa_syn"), (L.TA_SET, "toa_ack"), (L.TD_SET, "toa_data"))


def _generate() -> tuple[Callable[[TcpFlow, list], None], Callable[[TcpFlow], list]]:
    """The code copying the declared scalar fields between a row (as a list) and a TcpFlow,
    written out once as straight-line Python (as ``dataclasses`` does)."""
    pairs: dict[str, list[tuple[int, int, str]]] = {}
    loads: list[str] = []
    stores = {f: "0" for f in range(L.ROW_FIRST, L.ROW_END)}
    for f, attr, item, kind in L.ATTRS:
        assert L.ROW_FIRST <= f < L.ROW_END, L.FIELD_NAMES[f]
        ref = f"fl.{attr}" if item is None else f"fl.{attr}[{item}]"
        stores[f] = _to_row(ref, kind)
        if item is None:
            loads.append(f"    fl.{attr} = {_from_row(f, kind)}")
        else:
            pairs.setdefault(attr, []).append((item, f, kind))
    for attr, items in pairs.items():
        values = ", ".join(_from_row(f, kind) for _, f, kind in sorted(items))
        loads.append(f"    fl.{attr} = [{values}]")
    row = ",\n        ".join(stores[f] for f in range(L.ROW_FIRST, L.ROW_END))
    source = (
        "def load_scalars(fl, r):\n" + "\n".join(loads) + "\n\n\n"
        "def store_scalars(fl):\n    return [\n        " + row + ",\n    ]\n"
    )
    names: dict[str, Any] = {}
    exec(compile(source, "<pcapip.flows.rowflow generated>", "exec"), names)
    return names["load_scalars"], names["store_scalars"]


def _to_row(ref: str, kind: str) -> str:
    return {L.INT: ref, L.OPT: f"-1 if {ref} is None else {ref}", L.BOOL: f"int({ref})"}[kind]


def _from_row(f: int, kind: str) -> str:
    v = f"r[{f}]"
    return {L.INT: v, L.OPT: f"None if {v} < 0 else {v}", L.BOOL: f"{v} != 0"}[kind]


_load_scalars, _store_scalars = _generate()


def load(tab: TcpTable, s: int) -> TcpFlow:
    """The TcpFlow of row ``s``: its Python object brought up to date, or a new one."""
    r = tab.S[s].tolist() + tab.X[s].tolist()  # all NFIELDS, numbered as in layout
    fl = tab.extra.get(s)
    if fl is None:
        fl = _new(tab, r)
    _load_scalars(fl, r)
    closes = []
    for q in range(r[L.F_NCLOSES]):
        b = L.C0_SIDE + q * L.CLOSE_WIDTH
        side, rst, frame, capture, p0, p1 = r[b : b + 6]
        closes.append((side, "rst" if rst else "fin", frame, capture, bool(p0), bool(p1)))
    fl.closes = closes
    fp: list[tuple[int, int, bytes] | None] = [None, None]
    for side in (0, 1):
        if fl.pay_seen[side]:
            b = L.FP0_FRAME + side * L.FP_WIDTH
            off = side * L.PAYLOAD_KEEP
            fp[side] = (r[b], r[b + 1], tab.P[s, off : off + r[b + 2]].tobytes())
    fl.first_pay = fp
    if r[L.F_HEADER] == L.HDR_DICT:
        fl.header = tab.headers[s]
    elif r[L.F_HEADER] == L.HDR_ROW:
        fl.header = row_header(r)
    return fl


def _new(tab: TcpTable, r: list) -> TcpFlow:
    """A TcpFlow for a row without one: its key, serial and the TOA options the loop read."""
    a = (r[L.K_AHI] & _MASK64, r[L.K_ALO] & _MASK64, r[L.K_APORT])
    b = (r[L.K_BHI] & _MASK64, r[L.K_BLO] & _MASK64, r[L.K_BPORT])
    key = (6, *a, *b, tab.tunnels.label(r[L.K_TUN]))
    fl = TcpFlow(key, 0, 0, 0, 0, 0)
    fl.serial = r[L.F_SERIAL]
    fl.tunnel = tab.tunnels.label(r[L.F_TUN_TEXT])
    for base, attr in _TOAS:
        if r[base]:
            ip = r[base + L.T_IP]
            seen = ToaSeen(
                f"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}",
                r[base + L.T_PORT],
                r[base + L.T_KIND],
                r[base + L.T_LEN],
                tab.var_names[r[base + L.T_VAR]],
                r[base + L.T_FRAME],
                r[base + L.T_CAP],
            )
            setattr(fl, attr, seen)
    return fl


def store(tab: TcpTable, s: int, fl: TcpFlow) -> None:
    """Write ``fl`` back to row ``s``; keep the object only if it holds Python-only state."""
    row = _store_scalars(fl)
    row[L.F_NCLOSES - L.ROW_FIRST] = min(len(fl.closes), 2)
    for q, cl in enumerate(fl.closes[:2]):
        b = L.C0_SIDE - L.ROW_FIRST + q * L.CLOSE_WIDTH
        row[b : b + 6] = [cl[0], 1 if cl[1] == "rst" else 0, cl[2], cl[3], int(cl[4]), int(cl[5])]
    for side in (0, 1):
        x = fl.first_pay[side]
        if x is not None:
            b = L.FP0_FRAME - L.ROW_FIRST + side * L.FP_WIDTH
            row[b : b + 3] = [x[0], x[1], len(x[2])]
            off = side * L.PAYLOAD_KEEP
            tab.P[s, off : off + len(x[2])] = np.frombuffer(x[2], dtype=np.uint8)
    S = tab.S
    S[s, L.ROW_FIRST : L.ROW_END] = row
    S[s, L.F_BUFFERING] = fl.streams is not None
    X, xb = tab.X, L.XBASE
    if S[s, L.F_HEADER]:  # the object holds the header from now on
        if S[s, L.F_HEADER] == L.HDR_DICT:
            del tab.headers[s]
        else:  # (a row of X is dirty only while it says so: see ending._free)
            X[s, L.HK_VER - xb :] = 0
        S[s, L.F_HEADER] = 0
    if _python_state(fl):
        tab.extra[s] = fl
        S[s, L.F_EXTRA] = 1
    else:
        tab.extra.pop(s, None)
        S[s, L.F_EXTRA] = 0
        if X[s, L.TS_SET - xb] or X[s, L.TA_SET - xb] or X[s, L.TD_SET - xb]:
            X[s, : L.HK_VER - xb] = 0  # (every TOA group, not only the marks)


def _python_state(fl: TcpFlow) -> bool:
    """True when ``fl`` holds what its row cannot: the object must be kept."""
    return bool(
        fl.findings
        or fl.truncated
        or fl.streams is not None
        or fl.header is not None
        or fl.stacked is not None
        or fl.toa_syn is not None
        or fl.toa_ack is not None
        or fl.toa_data is not None
        or fl.toa_bad
        or fl.toa_cut
        or fl.incomplete
        or fl.gap
        or fl.base[0] is not None
        or fl.base[1] is not None
        or fl.noheader[0]
        or fl.noheader[1]
    )
