"""Column layout of the compiled flow table: one int64 row per TCP flow.

A row holds every scalar fact the per-packet rules read or write (the same
facts ``TcpFlow`` holds as attributes), so the compiled kernel can run those
rules on the row, and a ``TcpFlow`` can be built from a row and written back
when a packet needs the Python rules. Keeping a flow's facts in one
contiguous row makes that round trip one ``tolist()`` and one assignment.

Unknown values are -1 (an ISN, a frame number, the egress side); booleans
are 0/1; 64-bit address halves are stored as their int64 bit patterns.

Each field is declared once, here, with how it maps onto ``TcpFlow``
(:data:`ATTRS`): ``pcapip.flows.rowflow`` generates the row <-> TcpFlow code
from it, so a new fact is one line here plus its rule (in the kernel and the
machine). The kernel reads the field numbers as plain int constants (numba
freezes them in; the kernels' fingerprint covers their values).
"""

from __future__ import annotations

import numpy as np

_names: list[str] = []
_attrs: list[tuple[int, str, int | None, str]] = []

# how a field holds a TcpFlow attribute: as is; -1 for None; 0/1 for False/True
INT, OPT, BOOL = "int", "optional", "bool"


def _f(name: str, kind: str | None = None, attr: str | None = None, item: int | None = None) -> int:
    """Declare field ``name``; returns its column. With ``kind``, the field holds TcpFlow
    attribute ``attr`` (default: ``name``), or item ``item`` of that attribute's pair."""
    _names.append(name)
    if kind is not None:
        _attrs.append((len(_names) - 1, attr or name, item, kind))
    return len(_names) - 1


# --- key and bookkeeping (never touched by the per-packet rules)
K_HASH = _f("hash")
K_AHI = _f("a_hi")
K_ALO = _f("a_lo")
K_APORT = _f("a_port")
K_BHI = _f("b_hi")
K_BLO = _f("b_lo")
K_BPORT = _f("b_port")
K_TUN = _f("tunnel")  # the tenant's tunnel (pcapip.flows.tunnels), part of the key; 0: none
F_TUN_TEXT = _f("tunnel_text")  # the tunnel column of the flow's first packet (same coding)
F_SERIAL = _f("serial")
F_STATE = _f("state")  # ST_FREE / ST_OPEN / ST_ENDED
F_MARK = _f("mark")  # stamp of the kernel call that handed this flow's packets to Python
F_EXTRA = _f("extra")  # 1: a TcpFlow object holds Python-only state (header, findings, ...)
F_BUFFERING = _f("buffering")  # 1: a stream start is being reassembled (Python only)
F_CLOSE_ORDER = _f("close_order")  # order in which flows were first closed (for the flow cap)
F_HEADER = _f("header")  # a PROXY header read from the first segment: HDR_DICT / HDR_ROW
# --- the facts the rules read and write; ROW_FIRST..ROW_END is what a TcpFlow round-trips
# (fields without a kind have a rule of their own in pcapip.flows.rowflow)
F_CAPTURE = _f("capture", INT)
ROW_FIRST = F_CAPTURE
F_FIRST_FRAME = _f("first_frame", INT)
F_START = _f("start_ns", INT)
F_END = _f("end_ns", INT)
F_FIRST_SIDE = _f("first_side", INT)
F_PACKETS = _f("packets", INT)
F_BYTES = _f("bytes", INT)
F_EGRESS = _f("egress", OPT)
F_SYN_SEQ = _f("syn_seq", OPT)
F_SYNACK = _f("synack_seen", BOOL)
F_ISN0 = _f("isn0", OPT, "isn", 0)
F_ISN1 = _f("isn1", OPT, "isn", 1)
F_HS = _f("hs", INT)
F_HS_FRAME = _f("hs_frame", OPT)
F_HS_CAPTURE = _f("hs_capture", INT)
F_HS_OPT_LEN = _f("hs_opt_len", INT)
F_HS_TOA = _f("hs_toa", BOOL)
F_CLOSED = _f("closed", BOOL)
F_FIN_MASK = _f("fin_mask", INT)
F_NCLOSES = _f("ncloses")
# first two FIN/RST: side, rst (0/1), frame, capture, side 0 had payload, side 1 had payload
C0_SIDE = _f("c0_side")
C0_RST = _f("c0_rst")
C0_FRAME = _f("c0_frame")
C0_CAP = _f("c0_capture")
C0_P0 = _f("c0_pay0")
C0_P1 = _f("c0_pay1")
C1_SIDE = _f("c1_side")
C1_RST = _f("c1_rst")
C1_FRAME = _f("c1_frame")
C1_CAP = _f("c1_capture")
C1_P0 = _f("c1_pay0")
C1_P1 = _f("c1_pay1")
CLOSE_WIDTH = C1_SIDE - C0_SIDE
F_PAY0 = _f("pay_seen0", BOOL, "pay_seen", 0)
F_PAY1 = _f("pay_seen1", BOOL, "pay_seen", 1)
# first payload of each side: frame, capture, bytes kept (the bytes are in the payload matrix)
FP0_FRAME = _f("fp0_frame")
FP0_CAP = _f("fp0_capture")
FP0_LEN = _f("fp0_len")
FP1_FRAME = _f("fp1_frame")
FP1_CAP = _f("fp1_capture")
FP1_LEN = _f("fp1_len")
FP_WIDTH = FP1_FRAME - FP0_FRAME
F_SETTLED = _f("settled", BOOL)
F_NO_HEADER = _f("no_header", BOOL)
F_TRUNCATED = _f("truncated", BOOL)
ROW_END = len(_names)
# --- from here on the fields live in a second table, X (row s of X belongs to row s of S,
# field f at column f - XBASE): a SYN flood's attempts never write them, so X's pages for
# those rows are never touched and cost no memory (see pcapip.flows.tcptable.TcpTable._grow)
XBASE = len(_names)
# --- TOA options the kernel read itself (clean IPv4 client variants), per handshake phase;
# only meaningful while F_EXTRA is 0 (afterwards the TcpFlow object holds them)
TS_SET = _f("toa_syn_set")
TS_IP = _f("toa_syn_ip")
TS_PORT = _f("toa_syn_port")
TS_KIND = _f("toa_syn_kind")
TS_LEN = _f("toa_syn_len")
TS_VAR = _f("toa_syn_variant")
TS_FRAME = _f("toa_syn_frame")
TS_CAP = _f("toa_syn_capture")
TA_SET = _f("toa_ack_set")
_f("toa_ack_ip")
_f("toa_ack_port")
_f("toa_ack_kind")
_f("toa_ack_len")
_f("toa_ack_variant")
_f("toa_ack_frame")
_f("toa_ack_capture")
TD_SET = _f("toa_data_set")
_f("toa_data_ip")
_f("toa_data_port")
_f("toa_data_kind")
_f("toa_data_len")
_f("toa_data_variant")
_f("toa_data_frame")
_f("toa_data_capture")
# offsets inside one TOA group
T_IP, T_PORT, T_KIND, T_LEN, T_VAR, T_FRAME, T_CAP = 1, 2, 3, 4, 5, 6, 7
# --- a clean PROXY header the kernel read itself from the first segment (F_HEADER == 2):
# v1 TCP4 or v2 INET PROXY / LOCAL without TLVs (the dissector, pcapip.dissect.proxy, has the say)
HK_VER = _f("hdr_version")
HK_FAM = _f("hdr_family")  # v2: the family/transport byte (0x00 LOCAL, 0x11); v1: 0
HK_SRC = _f("hdr_src")  # IPv4 as an integer
HK_DST = _f("hdr_dst")
HK_SPORT = _f("hdr_sport")
HK_DPORT = _f("hdr_dport")
HK_LEN = _f("hdr_length")
HK_FRAME = _f("hdr_frame")
HK_CAP = _f("hdr_capture")
HDR_DICT, HDR_ROW = 1, 2  # F_HEADER: HeaderSeen held by the tracker / read by the kernel

NFIELDS = len(_names)  # fields of a flow: S holds the first XBASE, X the rest
NXFIELDS = NFIELDS - XBASE
FIELD_NAMES: tuple[str, ...] = tuple(_names)
# (field, TcpFlow attribute, item of its pair or None, INT/OPT/BOOL), in field order
ATTRS: tuple[tuple[int, str, int | None, str], ...] = tuple(_attrs)
PAYLOAD_KEEP = 16  # first payload bytes kept per side (enough to recognise "HTTP/1.x 400")

ST_FREE, ST_OPEN, ST_ENDED = 0, 1, 2


def template() -> np.ndarray:
    """A fresh flow row (all NFIELDS): every "unknown" field at -1, everything else 0 (the
    fields of X are all 0: a fresh row of X is a zero row)."""
    t = np.zeros(NFIELDS, dtype=np.int64)
    for f in (F_MARK, *(f for f, _, _, kind in ATTRS if kind == OPT)):
        t[f] = -1
    t[F_STATE] = ST_OPEN
    return t
