"""The flow table: every flow's row, numbered, with the findings that compare flows.

A missing client address only means something next to flows that have one
(same origin port), and a TOA with no room left only matters on a port that
uses TOA; so these findings wait until every flow of every capture is known.
The rows stay packed (``pcapip.flows.packed``) in the table too: exports read
them a slice at a time, and Python lists are built only for the columns a
caller asks for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from pcapip.errors import CaptureWarning
from pcapip.flows.attempts import FloodSummary, flood_summary
from pcapip.flows.columns import COLUMNS, METHODS, STATUSES, of_kind
from pcapip.flows.findings import CATALOGUE, ORDER, Finding, Level
from pcapip.flows.oddities import ToaKindSeen, announcers, toa_kinds_seen
from pcapip.flows.packed import (
    NO_IP,
    NULL,
    DiskStore,
    MemStore,
    PackedRows,
    Vocab,
    distinct,
    ints_out,
    pack_all,
)
from pcapip.flows.rowblock import RowBlock
from pcapip.flows.rows import FlowRow

if TYPE_CHECKING:
    from pcapip.flows.tracker import FlowTracker

# COLUMNS, METHODS and STATUSES (the output columns, their vocabularies) are declared in
# pcapip.flows.columns and stay importable from here

# output column -> packed row field, where the names differ
_ROW_NAME = {"start": "start_ns", "end": "end_ns"}
_IPS = frozenset(of_kind("ip"))
_TEXTS = frozenset(of_kind("category", "text"))
# the findings column is a bit mask of codes per flow
assert len(ORDER) < 63


class Columns(MutableMapping[str, list[Any]]):
    """The table's columns as Python lists (missing values None), each built on first use.

    A list assigned or changed here is what the exports write.
    """

    def __init__(self, table: FlowTable) -> None:
        self._table = table
        self._lists: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        got = self._lists.get(name)
        if got is None:
            if name not in COLUMNS:
                raise KeyError(name)
            got = self._lists[name] = self._table.column(name, 0, len(self._table))
        return got

    def __setitem__(self, name: str, values: list[Any]) -> None:
        self._lists[name] = values

    @property
    def assigned(self) -> set[str]:
        """Columns built as lists (by a caller's access or assignment): what the exports
        must write, since the caller may have changed them."""
        return set(self._lists)

    def __delitem__(self, name: str) -> None:
        del self._lists[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COLUMNS)

    def __len__(self) -> int:
        return len(COLUMNS)

    def slice(self, name: str, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of one column, without building the whole list."""
        got = self._lists.get(name)
        if got is not None:
            return got[lo:hi]
        if name not in COLUMNS:
            raise KeyError(name)
        return self._table.column(name, lo, hi)


class FlowTable:
    """One row per flow, in order of each flow's first packet (flow ids 1..n).

    ``columns`` maps each output column to a list; ``findings`` lists every
    finding per flow in packet order; ``header_frames`` maps a flow id to the
    (capture, packet) pairs that carried its client address. Times are integer
    nanoseconds since the epoch (UTC). The rows themselves stay packed, in
    memory or (for a large capture) in temporary files.
    """

    def __init__(
        self,
        rows: PackedRows,
        vocab: Vocab,
        stats: dict[str, int],
        captures: Sequence[str] = (),
    ) -> None:
        # ``rows.cols`` also holds ``findings_col`` (per flow: the vocabulary code of its
        # ';'-joined codes) and every finding in output order (``F_flow``, ``F_code``,
        # ``F_msg``, ``F_frame``, ``F_cap``)
        self.rows = rows
        self.vocab = vocab
        self.stats = stats
        self.captures: list[str] = list(captures)
        self.columns = Columns(self)
        # facts about the capture as a whole, said once in the report (not per flow):
        # oddities met while reading (never silent, never an exit status)
        self.warnings: list[CaptureWarning] = []
        # why packets gave no TCP/UDP flow: label -> packets ("ARP": 8, ...)
        self.undecoded: dict[str, int] = {}
        # source addresses that announced a client (TOA/PROXY) -> flows, most first
        self.announcers: dict[str, int] = {}
        self.trusted_checked = False  # --trusted given: client.untrusted was judged
        # TOA kinds that carried clients, and whether --toa-kind asked for kinds
        self.toa_kinds: list[ToaKindSeen] = []
        self.toa_asked = False
        # connection attempts that never completed (SYN flood?): counts and top sources
        self.flood = FloodSummary()

    def __len__(self) -> int:
        return len(self.rows)

    def raw(self, name: str, lo: int, hi: int) -> tuple[str, np.ndarray]:
        """Rows ``lo:hi`` of output column ``name`` as stored, with how to read them:
        "int" (NULL for missing; times are nanoseconds), "ip" (address codes of
        ``vocab``), "text" (vocabulary codes, -1 for missing)."""
        if name not in COLUMNS:
            raise KeyError(name)
        if name == "flow":
            return "int", np.arange(lo + 1, min(hi, len(self)) + 1, dtype=np.int64)
        store = self.rows.cols
        if name == "findings":
            return "text", store.slice("findings_col", lo, hi)
        values = store.slice(_ROW_NAME.get(name, name), lo, hi)
        return ("ip" if name in _IPS else "text" if name in _TEXTS else "int"), values

    def column(self, name: str, lo: int, hi: int) -> list[Any]:
        """Rows ``lo:hi`` of output column ``name`` as Python values."""
        kind, values = self.raw(name, lo, hi)
        if kind == "ip":
            return self.vocab.ip_decode(values)
        if kind == "text":
            return self.vocab.decode(values)
        return ints_out(values)

    @cached_property
    def findings(self) -> list[Finding]:
        c = self.rows.cols
        decode = self.vocab.decode
        return [
            Finding(flow, code, msg, frame, cap)
            for flow, code, msg, frame, cap in zip(
                c["F_flow"].tolist(),
                decode(c["F_code"]),
                decode(c["F_msg"]),
                ints_out(c["F_frame"]),
                c["F_cap"].tolist(),
                strict=True,
            )
        ]

    @cached_property
    def header_frames(self) -> dict[int, list[tuple[int, int]]]:
        has = np.flatnonzero(self.rows.cols["hf_len"]).tolist()
        if not has:
            return {}
        frames = self.rows.header_frames()
        return {r + 1: frames[r] for r in has}

    def worst_level(self) -> Level | None:
        """The most severe level among the findings, None without findings."""
        codes = distinct(self.rows.cols["F_code"]).tolist()
        texts = self.vocab.texts
        return max((CATALOGUE[texts[c]].level for c in codes), default=None)


def _in(nets: Sequence[Any], ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(a.version == n.version and a in n for n in nets)


def _same_ip(a: str | None, b: str | None) -> bool:
    """Whether two address texts name the same address (IPv6 text has many spellings)."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


class _Extra:
    """Findings that compare flows, gathered as (rows, code, messages, frames, captures)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, str, list[str], np.ndarray, np.ndarray]] = []

    def add(
        self, rows: np.ndarray, code: str, msgs: list[str], frames: np.ndarray, caps: np.ndarray
    ) -> None:
        if rows.size:
            self.parts.append((rows, code, msgs, frames, caps))


def _where_read(c: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, captures) where each row's client address was read, else its first packet."""
    hcap = c["header_frame_cap"][rows]
    have = hcap != NULL
    frames = np.where(have, c["header_frame_frame"][rows], c["first_frame"][rows])
    caps = np.where(have, hcap, c["capture"][rows])
    return frames, caps


def missing_client(toa_port: Any, pp_port: Any, hs_done: Any, spoke: Any) -> Any:
    """Whether a flow that carried no client address is missing one (scalars or arrays).

    On a port where other flows carry TOA the handshake ACK (or the first data) decides:
    that is where the option would have been. On a port where they carry a PROXY header
    only the first data does: a connection whose capture ended before it sent anything
    may still have been about to send its header.
    """
    return (toa_port & (hs_done | spoke)) | (pp_port & spoke)


_SLICE = 1 << 20  # rows read at a time where a whole column is not needed


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` for sorted distinct ``sorted_set``, a slice at a time
    (np.isin sorts a concatenation of both: several copies of a ten-million-row column)."""
    out = np.zeros(values.size, dtype=bool)
    if sorted_set.size == 0:
        return out
    last = sorted_set.size - 1
    for lo in range(0, values.size, _SLICE):
        v = values[lo : lo + _SLICE]
        at = np.minimum(np.searchsorted(sorted_set, v), last)
        out[lo : lo + v.size] = sorted_set[at] == v
    return out


def _cross_flow(p: PackedRows, vocab: Vocab, trusted: Sequence[Any] | None) -> _Extra:
    c = p.cols
    code = vocab.code
    out = _Extra()
    # one number per (transport, origin address, origin port); address codes may be negative
    # (built a slice of rows at a time: a flood's ten million rows hold no column copies)
    n = len(p)
    key = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=bool)  # carried a client address
    udp, good = code("udp"), code("ok")
    for lo in range(0, n, _SLICE):
        hi = min(n, lo + _SLICE)
        k = c.slice("origin_ip", lo, hi) * (1 << 18)
        k += c.slice("origin_port", lo, hi) * 2
        k += c.slice("transport", lo, hi) == udp
        key[lo:hi] = k
        ok[lo:hi] = (c.slice("client_ip", lo, hi) != NO_IP) & (c.slice("status", lo, hi) == good)
    # origin ports where some flow carried a client address, by TOA or by a PROXY header
    method = c["method"]
    is_toa = method == code("toa")
    with_toa = distinct(key[ok & is_toa])
    with_pp = distinct(key[ok & ~is_toa])
    del ok, is_toa
    if with_toa.size or with_pp.size:
        rows = np.flatnonzero(
            (method == code("none"))
            & missing_client(
                _member(key, with_toa), _member(key, with_pp), c["hs_done"], c["spoke"]
            )
        )
        ips = vocab.ip_decode(c["origin_ip"][rows])
        msgs = [
            f"no TOA or PROXY header, while other flows to {ip}:{port} carry one"
            for ip, port in zip(ips, c["origin_port"][rows].tolist(), strict=True)
        ]
        out.add(rows, "client.missing", msgs, c["first_frame"][rows], c["capture"][rows])
    # a PROXY header whose source is the connection's own source: the proxy's health check
    cand = np.flatnonzero(np.isin(method, [code("ppv1"), code("ppv2")]))
    cp, ep = c["client_port"][cand], c["egress_port"][cand]
    cand = cand[(cp != NULL) & (cp == ep)]
    if cand.size:
        c_ip, e_ip = c["client_ip"][cand], c["egress_ip"][cand]
        same = (c_ip >= 0) & (c_ip == e_ip)
        texts = (c_ip < NO_IP) | (e_ip < NO_IP)  # a text on either side: compare as addresses
        if texts.any():
            ct, et = vocab.ip_decode(c_ip[texts]), vocab.ip_decode(e_ip[texts])
            same[texts] = [_same_ip(a, b) for a, b in zip(ct, et, strict=True)]
        rows = cand[same]
        ips = vocab.ip_decode(c["client_ip"][rows])
        msgs = [
            f"the header's source {ip}:{port} is this connection's own source: "
            "a check by the proxy, not a client"
            for ip, port in zip(ips, c["client_port"][rows].tolist(), strict=True)
        ]
        out.add(rows, "proxy.self_addressed", msgs, *_where_read(c, rows))
    # a full handshake ACK without TOA, on a flow or a port that uses TOA
    toa = c["toa_carried"]
    nr = c["no_room_cap"] != NULL
    if nr.any():
        rows = np.flatnonzero(nr & (toa | _member(key, distinct(key[toa]))))
        msg = "the handshake ACK has no TOA and its options leave fewer than 8 free bytes"
        out.add(
            rows, "toa.no_room", [msg] * rows.size, c["no_room_frame"][rows], c["no_room_cap"][rows]
        )
    if trusted is not None:
        rows = np.flatnonzero(c["carries_client"])
        e = c["egress_ip"][rows]
        uniq, inv = np.unique(e, return_inverse=True)
        bad_ip = np.asarray([not _in(trusted, ip) for ip in vocab.ip_decode(uniq)], dtype=bool)
        rows = rows[bad_ip[inv]] if uniq.size else rows
        e_txt = vocab.ip_decode(c["egress_ip"][rows])
        c_txt = vocab.ip_decode(c["client_ip"][rows])
        msgs = [
            f"{ip} is not in --trusted; its connection"
            + (f" claims client {who}" if who else " carries a client header")
            for ip, who in zip(e_txt, c_txt, strict=True)
        ]
        out.add(rows, "client.untrusted", msgs, *_where_read(c, rows))
    return out


def _findings(p: PackedRows, vocab: Vocab, pos: np.ndarray, extra: _Extra) -> dict[str, np.ndarray]:
    """Every finding, per flow in order of its packet (ties: the order they were noted):
    the rows' own first, then the cross-flow ones, code by code."""
    f = p.cols
    flow = [pos[f["f_row"]]]
    codes = [f["f_code"]]
    msgs = [f["f_msg"]]
    frames = [f["f_frame"]]
    caps = [f["f_cap"]]
    for rows, code, texts, fr, cp in extra.parts:
        flow.append(pos[rows])
        codes.append(np.full(rows.size, vocab.code(code), dtype=np.int32))
        msgs.append(vocab.encode(texts))
        frames.append(fr.astype(np.int64))
        caps.append(cp.astype(np.int64))
    out = {
        "flow": np.concatenate(flow),
        "code": np.concatenate(codes),
        "msg": np.concatenate(msgs),
        "frame": np.concatenate(frames),
        "cap": np.concatenate(caps),
    }
    fkey = np.where(out["frame"] == NULL, 0, out["frame"])
    order = np.lexsort((np.arange(fkey.size), fkey, out["flow"]))
    return {k: v[order] for k, v in out.items()}


def _findings_column(n: int, fnd: dict[str, np.ndarray], vocab: Vocab) -> np.ndarray:
    """Each flow's distinct codes, in catalogue order, ``;``-joined (vocabulary codes)."""
    col = np.full(n, vocab.code(""), dtype=np.int32)
    if fnd["code"].size == 0:
        return col
    present = distinct(fnd["code"]).tolist()
    texts = vocab.texts
    by_code = sorted(present, key=lambda k: ORDER[texts[k]])
    bit = np.zeros(max(present) + 1, dtype=np.int64)
    for rank, k in enumerate(by_code):
        bit[k] = 1 << rank
    mask = np.zeros(n, dtype=np.int64)
    np.bitwise_or.at(mask, fnd["flow"] - 1, bit[fnd["code"]])
    uniq, inv = np.unique(mask, return_inverse=True)
    names = [
        vocab.code(";".join(texts[k] for r, k in enumerate(by_code) if m >> r & 1))
        for m in uniq.tolist()
    ]
    return np.asarray(names, dtype=np.int32)[inv]


def _put(store: MemStore | DiskStore, name: str, values: np.ndarray) -> MemStore | DiskStore:
    """Add a column; returns the store, which is a MemStore from now on if the temporary
    file could not be written (no space left): the table is then held in memory."""
    if isinstance(store, DiskStore):
        try:
            store.append(name, values)
            return store
        except OSError:
            store = store.to_memory()
    store[name] = values
    return store


def _permuted(p: PackedRows, order: np.ndarray, consume: bool) -> MemStore | DiskStore:
    """The rows' columns in ``order``, without the findings (the table keeps its own), in
    memory or on disk as ``p``'s are. With ``consume``, ``p``'s in-memory columns are
    dropped as soon as they are copied, so the rows are never held twice."""
    src = p.cols
    out: MemStore | DiskStore = DiskStore() if src.on_disk else MemStore()
    lens = src["hf_len"]
    starts = np.zeros(lens.size, dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    lens_o = lens[order].astype(np.int64)
    out_start = np.cumsum(lens_o) - lens_o
    idx = np.arange(int(lens_o.sum()), dtype=np.int64) + np.repeat(
        starts[order] - out_start, lens_o
    )
    del lens, starts, lens_o, out_start
    for name in list(src):
        if name.startswith("f_"):
            continue
        values = src[name]
        if consume and isinstance(src, MemStore):
            del src[name]
        moved = values[idx if name in ("hf_cap", "hf_frame") else order]
        del values
        out = _put(out, name, moved)
    if isinstance(src, DiskStore) and consume:
        src.close()
    return out


def _counts(p: PackedRows, vocab: Vocab, fnd: dict[str, np.ndarray]) -> dict[str, int]:
    c = p.cols
    codes = vocab.codes

    def count(col: str, text: str) -> int:
        k = codes.get(text)
        return 0 if k is None else int(np.count_nonzero(c[col] == k))

    tcp = c["transport"] == codes.get("tcp", -2)
    done = c["hs_done"] & tcp
    out = {
        "flows": len(p),
        "flows_tcp": int(np.count_nonzero(tcp)),
        "flows_udp": count("transport", "udp"),
        "syn_recv_sock_toa": int(np.count_nonzero(done & c["hs_toa"])),
        "syn_recv_sock_no_toa": int(np.count_nonzero(done & ~c["hs_toa"])),
        "toa_in_syn": int(np.count_nonzero(c["toa_in_syn"])),
        "flows_with_toa": int(np.count_nonzero(c["toa_carried"])),
    }
    levels = {"info": 0, "warning": 0, "error": 0}
    if fnd["code"].size:
        per = np.bincount(fnd["code"])
        for k in np.flatnonzero(per).tolist():
            levels[CATALOGUE[vocab.texts[k]].level.label] += int(per[k])
    for label, k in levels.items():
        out[f"findings_{label}"] = k
    for m in METHODS:
        out[f"method_{m}"] = count("method", m)
    for st in STATUSES:
        out[f"status_{st}"] = count("status", st)
    return out


def build_table(
    rows: PackedRows | RowBlock | Iterable[FlowRow],
    *,
    trusted: Sequence[Any] | None = None,
    stats: dict[str, int] | None = None,
    captures: Sequence[str] = (),
    vocab: Vocab | None = None,
    consume: bool = False,
    registry: Any = None,
) -> FlowTable:
    """Number the flows in order of their first packet, add the findings that compare
    flows, and count. Packed ``rows`` need the ``vocab`` they were packed with; they are
    left as they were unless ``consume`` (then their columns move into the table)."""
    if isinstance(rows, PackedRows):
        if vocab is None:
            raise ValueError("packed rows need their vocabulary")
        p = rows
    else:
        vocab = vocab if vocab is not None else Vocab()
        part = rows if isinstance(rows, RowBlock) else list(rows)
        p = PackedRows.concat(pack_all([part], vocab))
        consume = True
    n = len(p)
    c = p.cols
    order = np.lexsort((c["first_frame"], c["capture"])) if n else np.zeros(0, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(1, n + 1)
    # computed on the rows as they came (flow ids from ``pos``)
    extra = _cross_flow(p, vocab, trusted)
    fnd = _findings(p, vocab, pos, extra)
    del extra, pos
    out: dict[str, int] = dict(stats or {})
    out.update(_counts(p, vocab, fnd))
    said = announcers(c["egress_ip"], c["carries_client"], vocab)
    kinds = toa_kinds_seen(c["toa_kind"], registry)
    out["announcers"] = len(said)
    flood = flood_summary(c, n, vocab.codes, vocab)
    out["attempts"], out["attempt_sources"] = flood.attempts, flood.sources
    store = _permuted(p, order, consume)
    del order
    store = _put(store, "findings_col", _findings_column(n, fnd, vocab))
    for k in list(fnd):
        store = _put(store, f"F_{k}", fnd.pop(k))
    table = FlowTable(PackedRows(store), vocab, out, captures)
    table.announcers, table.toa_kinds, table.flood = said, kinds, flood
    table.trusted_checked = trusted is not None
    return table


def finish_table(
    tracker: FlowTracker,
    captures: Sequence[str],
    trusted: str | Sequence[Any] | None = None,
    *,
    earlier: Iterable[FlowRow] = (),
    warnings: Iterable[CaptureWarning] = (),
    toa_asked: bool = False,
) -> FlowTable:
    """End every open flow and build the flow table, as ``pcapip analyze`` does.

    ``earlier`` holds rows already taken from the tracker (``take_ended``),
    e.g. spooled by a long live capture; ``trusted`` is the ``--trusted``
    spec or its parsed networks; ``warnings`` the sources' (``CaptureSource.
    warnings``), to which the tracker's undecoded-packet warnings are added;
    ``toa_asked``: ``--toa-kind`` was given (the report then shows the TOA
    counters even when no TOA was seen).
    """
    from pcapip.flows.trusted import parse_trusted

    if isinstance(trusted, str) or (
        trusted is not None and any(isinstance(t, str) for t in trusted)
    ):
        trusted = parse_trusted(trusted)
    tracker.end_all()
    vocab = tracker.vocab
    parts = tracker.take_blocks()
    parts.extend(pack_all([earlier], vocab))
    block = PackedRows.concat(parts)
    del parts
    table = build_table(
        block,
        trusted=trusted,
        stats=tracker.stats,
        captures=list(captures),
        vocab=vocab,
        consume=True,
        registry=tracker.registry,
    )
    table.stats["captures"] = len(captures)
    undecoded = tracker.undecoded
    table.stats["packets_blind"] = undecoded.blind_packets()
    table.undecoded = undecoded.totals()
    # an unsupported link type is in the undecoded summary already, with its count
    table.warnings = [w for w in warnings if w.kind != "linktype_unsupported"]
    table.warnings += undecoded.warnings(captures)
    table.toa_asked = toa_asked
    return table
