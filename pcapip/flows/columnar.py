"""Flow rows as columns: the compiled path's output, and the table's input.

Most connections of a capture are plain: a handshake, maybe a clean TOA
option, a first payload that is not a PROXY header, data, a close. Their
rows are computed here from the flow table's int64 rows all at once (the
same verdicts and findings ``pcapip.flows.rows.compact`` gives a ``TcpFlow``
in that state, checked by the tests against the per-packet path), so a
capture with a hundred thousand connections does not build a hundred
thousand Python objects on the way to its CSV.

``RowBlock`` holds rows column by column, whichever way they were made
(``FlowRow`` objects from flows that needed Python convert to a block and
back); blocks are packed (``pcapip.flows.packed``) as soon as they are made,
and the table is built from packed blocks only.
"""

from __future__ import annotations

import _socket as socket  # (the C module: inet_ntop/aton without socket.py's import cost)
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcapip.flows import headers as _hdr
from pcapip.flows import layout as L
from pcapip.flows.attempts import attempt_status
from pcapip.flows.columns import METHODS, STATUSES
from pcapip.flows.packed import NO_IP, NULL, Vocab
from pcapip.flows.rowblock import RowBlock
from pcapip.flows.rows import _header_notes
from pcapip.flows.state import HS_DONE
from pcapip.flows.verdict import NO_HEADER, header_status, verdict


def _http_400(P: np.ndarray, rows: np.ndarray, side: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Does the kept first payload of ``side`` start like "HTTP/x.y 400 " (rows._HTTP_400)?"""
    if rows.size == 0:
        return np.zeros(0, dtype=bool)
    b = P[rows[:, None], side[:, None] * L.PAYLOAD_KEEP + np.arange(13)]
    digit = (b >= 48) & (b <= 57)
    return (
        (length >= 13)
        & (b[:, :5] == np.frombuffer(b"HTTP/", dtype=np.uint8)).all(axis=1)
        & digit[:, 5]
        & (b[:, 6] == 46)
        & digit[:, 7]
        & (b[:, 8] == 32)
        & (b[:, 9:12] == np.frombuffer(b"400", dtype=np.uint8)).all(axis=1)
        & ((b[:, 12] == 32) | (b[:, 12] == 13) | (b[:, 12] == 10))
    )


def compact_plain(
    S: np.ndarray,
    X: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    headers: dict[int, Any],
    vocab: Vocab,
) -> RowBlock:
    """Rows of flows held in the flow table without a TcpFlow object, computed as columns.

    Such a flow raised no finding while its packets were read, read any TOA
    option itself (a clean IPv4 client variant) and, if its first segment
    was a PROXY header, read it from that one segment: a clean one in the
    row's header fields (HDR_ROW), any other in ``headers`` (row -> HeaderSeen,
    HDR_DICT). The rules are those of ``pcapip.flows.rows._compact_tcp`` for
    these states, each row's findings in the same order. The address columns
    are address codes of ``vocab`` (``pcapip.flows.packed``), ready to pack.
    """
    # the flow table's fields for every row; its second part (a TOA option's or a PROXY
    # header's fields) only for the rows that have one (``whole``): a flood has none
    M = S[rows]
    n = len(rows)
    x = L.XBASE
    # (three flat takes: a gather of a few columns over scattered rows by 2-d fancy
    # indexing costs several times as much)
    flat, at = X.reshape(-1), rows * X.shape[1] - x
    sets = [flat[at + b] for b in (L.TS_SET, L.TA_SET, L.TD_SET)]

    def whole(sub: np.ndarray) -> np.ndarray:
        """Every field of rows ``sub``, numbered as in layout."""
        return np.concatenate((M[sub], X[rows[sub]]), axis=1)

    a_port = M[:, L.K_APORT]
    b_port = M[:, L.K_BPORT]
    egress = M[:, L.F_EGRESS]
    first_side = M[:, L.F_FIRST_SIDE]
    guess = np.where(a_port != b_port, np.where(a_port > b_port, 0, 1), 1 - first_side)
    eg = np.where(egress >= 0, egress, guess)
    og = 1 - eg
    a_is_e = eg == 0
    e_ip = vocab.ip_from_halves(
        np.where(a_is_e, M[:, L.K_AHI], M[:, L.K_BHI]),
        np.where(a_is_e, M[:, L.K_ALO], M[:, L.K_BLO]),
    )
    o_ip = vocab.ip_from_halves(
        np.where(a_is_e, M[:, L.K_BHI], M[:, L.K_AHI]),
        np.where(a_is_e, M[:, L.K_BLO], M[:, L.K_ALO]),
    )

    kind = M[:, L.F_HEADER]
    has_hdr = kind != 0
    ts_set, ta_set, td_set = (v != 0 for v in sets)
    has_toa = ts_set | ta_set | td_set
    # the TOA a receiving module most likely uses: handshake ACK, else SYN, else data
    g = np.where(ta_set, L.TA_SET, np.where(ts_set, L.TS_SET, L.TD_SET))
    start_seen = (M[:, L.F_SYN_SEQ] >= 0) | (M[:, L.F_SYNACK] != 0)
    hs_done = M[:, L.F_HS] == HS_DONE
    pay_eg = np.where(a_is_e, M[:, L.F_PAY0], M[:, L.F_PAY1]) != 0
    # the origin closed first, having sent nothing, after data from the egress side
    silent = (
        (egress >= 0)
        & pay_eg
        & (M[:, L.F_NCLOSES] > 0)
        & (M[:, L.C0_SIDE] == og)
        & ((np.where(og == 0, M[:, L.C0_P0], M[:, L.C0_P1])) == 0)
        & ((np.where(a_is_e, M[:, L.C0_P0], M[:, L.C0_P1])) != 0)
    )

    block = RowBlock()
    c = block.cols
    # numbers, flags and addresses as arrays, texts as lists: both pack as they are
    c["capture"] = M[:, L.F_CAPTURE]
    c["first_frame"] = M[:, L.F_FIRST_FRAME]
    c["transport"] = np.full(n, vocab.code("tcp"), dtype=np.int32)
    c["start_ns"] = M[:, L.F_START]
    c["end_ns"] = M[:, L.F_END]
    c["egress_ip"] = e_ip
    c["egress_port"] = np.where(a_is_e, a_port, b_port)
    c["origin_ip"] = o_ip
    c["origin_port"] = np.where(a_is_e, b_port, a_port)
    c["packets"] = M[:, L.F_PACKETS]
    c["bytes"] = M[:, L.F_BYTES]
    c["spoke"] = pay_eg
    c["carries_client"] = has_toa | has_hdr
    c["toa_carried"] = has_toa
    c["hs_done"] = hs_done
    c["hs_toa"] = M[:, L.F_HS_TOA] != 0
    c["toa_in_syn"] = ts_set
    no_room = (
        hs_done
        & (M[:, L.F_HS_TOA] == 0)
        & (M[:, L.F_HS_OPT_LEN] > 40 - 8)
        & (M[:, L.F_HS_FRAME] >= 0)
    )
    c["no_room"] = (
        np.where(no_room, M[:, L.F_HS_CAPTURE], NULL),
        np.where(no_room, M[:, L.F_HS_FRAME], NULL),
    )

    # texts as vocabulary codes, missing numbers as NULL (what PackedRows.pack takes)
    code = vocab.code

    def text_code(text: str | None) -> int:
        return -1 if text is None else code(text)

    # what a PROXY header says for the verdict (pcapip.flows.verdict)
    hdr_status = np.full(n, NO_HEADER, dtype=np.int64)
    hdr_version = np.zeros(n, dtype=np.int64)
    client_ip = np.full(n, NO_IP, dtype=np.int64)
    client_port = np.full(n, NULL, dtype=np.int64)
    proxy_ip = np.full(n, NO_IP, dtype=np.int64)
    proxy_port = np.full(n, NULL, dtype=np.int64)
    pp_command = np.full(n, -1, dtype=np.int32)
    pp_family = np.full(n, -1, dtype=np.int32)
    tlvs = np.full(n, code(""), dtype=np.int32)
    hf_cap = np.full(n, NULL, dtype=np.int64)  # where the client address was read
    hf_frame = np.full(n, NULL, dtype=np.int64)
    # the packets that carried the client address: (row, order within the row, capture,
    # frame) in parts, sorted into per-row lists at the end
    carried: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    one_by_one: list[tuple[int, int, int, int]] = []  # (the same, for rows taken one by one)

    # ---- TOA (clean IPv4 client options, read by the kernel)
    toa_rows = np.flatnonzero(has_toa)
    toa_kind = np.full(n, NULL, dtype=np.int64)  # kind * 256 + length of the client's TOA
    toa_late_note: dict[int, tuple[str, str, int, int]] = {}
    if toa_rows.size:
        gt = g[toa_rows]
        Mt = whole(toa_rows)
        pt = np.arange(toa_rows.size)
        t_ip = Mt[pt, gt + L.T_IP]
        t_port = Mt[pt, gt + L.T_PORT]
        client_ip[toa_rows] = t_ip
        client_port[toa_rows] = t_port
        hf_cap[toa_rows] = Mt[pt, gt + L.T_CAP]
        hf_frame[toa_rows] = Mt[pt, gt + L.T_FRAME]
        # the packets that carried a TOA: SYN, handshake ACK, data (in that order, once each)
        seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k, b in enumerate((L.TS_SET, L.TA_SET, L.TD_SET)):
            kc, kf = Mt[:, b + L.T_CAP], Mt[:, b + L.T_FRAME]
            keep = Mt[:, b] != 0
            for s_set, s_cap, s_frame in seen:
                keep &= ~(s_set & (s_cap == kc) & (s_frame == kf))
            seen.append((keep, kc, kf))
            carried.append((toa_rows[keep], np.full(int(keep.sum()), k), kc[keep], kf[keep]))
        toa_kind[toa_rows] = Mt[pt, gt + L.T_KIND] * 256 + Mt[pt, gt + L.T_LEN]
        # handshake completed without TOA in its ACK: TOA only in the SYN, or only later
        late = np.flatnonzero(has_toa & ~ta_set & hs_done)
        for r, row in zip(late.tolist(), whole(late), strict=True):
            hsf, hsc = int(row[L.F_HS_FRAME]), int(row[L.F_HS_CAPTURE])
            if ts_set[r]:
                extra = " and in data segments" if td_set[r] else ""
                toa_late_note[r] = (
                    "toa.syn_only",
                    f"TOA in the SYN (packet {int(row[L.TS_SET + L.T_FRAME])}){extra} but not in "
                    f"the handshake ACK (packet {hsf})",
                    hsf,
                    hsc,
                )
            else:
                dfr = int(row[L.TD_SET + L.T_FRAME])
                toa_late_note[r] = (
                    "toa.after_handshake",
                    f"first TOA in packet {dfr}, after the handshake ACK (packet {hsf})",
                    dfr,
                    int(row[L.TD_SET + L.T_CAP]),
                )

    # ---- PROXY headers read from the first segment
    hdr_rows = np.flatnonzero(has_hdr)
    hdr_notes: dict[int, list[tuple[str, str, int | None, int]]] = {}
    if hdr_rows.size:
        Mh = whole(hdr_rows)
        # what the origin did first: an HTTP 400 reply, or a close without a reply
        o_h = og[hdr_rows]
        ph = np.arange(hdr_rows.size)
        fp = L.FP0_FRAME + o_h * L.FP_WIDTH
        replied = np.where(o_h == 0, Mh[:, L.F_PAY0], Mh[:, L.F_PAY1]) != 0
        react = (egress[hdr_rows] >= 0) & pay_eg[hdr_rows]
        bad_reply = replied & _http_400(P, rows[hdr_rows], o_h, Mh[ph, fp + 2])
        rows_l = rows.tolist()
        kr = kind[hdr_rows] == L.HDR_ROW
        local = kr & (Mh[:, L.HK_VER] == 2) & (Mh[:, L.HK_FAM] == 0)
        # headers the kernel read, with addresses, on flows without TOA: all columns at once
        simple = np.flatnonzero(kr & ~local & ~has_toa[hdr_rows])
        if simple.size:
            rs = hdr_rows[simple]
            Ms = Mh[simple]
            v1 = Ms[:, L.HK_VER] == 1
            hdr_version[rs] = Ms[:, L.HK_VER]
            hdr_status[rs] = header_status("ok")
            pp_command[rs] = code("PROXY")
            pp_family[rs] = np.where(v1, code("TCP4"), code("INET"))
            client_ip[rs] = Ms[:, L.HK_SRC]
            client_port[rs] = Ms[:, L.HK_SPORT]
            proxy_ip[rs] = Ms[:, L.HK_DST]
            proxy_port[rs] = Ms[:, L.HK_DPORT]
            hf_cap[rs] = Ms[:, L.HK_CAP]
            hf_frame[rs] = Ms[:, L.HK_FRAME]
            carried.append((rs, np.full(rs.size, 3), hf_cap[rs], hf_frame[rs]))
        others = np.ones(hdr_rows.size, dtype=bool)
        others[simple] = False
        # each remaining row on its own: the header notes, then TOA against header, the
        # origin's reaction (all of _compact_tcp that a settled header can raise)
        for q in np.flatnonzero(others | (react & (bad_reply | silent[hdr_rows]))).tolist():
            r = int(hdr_rows[q])
            collect = _Collect()
            row = Mh[q].tolist()
            capture = row[L.F_CAPTURE]
            hs = row_header(row) if kr[q] else headers[rows_l[r]]
            h = hs.header
            state = hs.state
            if others[q]:  # (else the columns are set above; only the origin's reaction left)
                hdr_version[r] = hs.version or 1
                hdr_status[r] = header_status(state)
                c_ip, c_port, p_ip, p_port = _hdr.client_fields(hs)
                if h is not None:
                    pp_command[r], pp_family[r] = text_code(h.command), text_code(h.family)
                    if h.tlvs:
                        tlvs[r] = code(_hdr.tlv_text(h))
                proxy_ip[r] = vocab.ip_code(p_ip)
                proxy_port[r] = NULL if p_port is None else p_port
                hframe = hs.frames[0] if hs.frames else None
                _header_notes(collect, hs, capture)
                toa_frames: list[tuple[int, int]] = []
                if has_toa[r]:
                    # the TOA a receiving module uses (as in the TOA columns above)
                    t = int(g[r])
                    toa_ip = socket.inet_ntop(socket.AF_INET, row[t + L.T_IP].to_bytes(4, "big"))
                    toa_port = row[t + L.T_PORT]
                    for b in (L.TS_SET, L.TA_SET, L.TD_SET):
                        f = (row[b + L.T_CAP], row[b + L.T_FRAME])
                        if row[b] and f not in toa_frames:
                            toa_frames.append(f)
                    if state != "ok" and c_ip is None:
                        c_ip, c_port = toa_ip, toa_port
                        hframe = (int(hf_cap[r]), int(hf_frame[r]))
                    elif c_ip is not None and (toa_ip, toa_port) != (c_ip, c_port):
                        collect.note(
                            "client.disagree",
                            f"TOA (packet {row[t + L.T_FRAME]}) says "
                            f"{_hdr.hostport(toa_ip, toa_port)}, "
                            f"the PROXY header says {_hdr.hostport(c_ip, c_port)}",
                            hs.frames[0][1] if hs.frames else None,
                            capture,
                        )
                    if r in toa_late_note:
                        collect.note(*toa_late_note.pop(r))
                client_ip[r] = vocab.ip_code(c_ip)
                client_port[r] = NULL if c_port is None else c_port
                hf_cap[r], hf_frame[r] = hframe if hframe is not None else (NULL, NULL)
                k = 3
                for f in hs.frames:
                    if f not in toa_frames:
                        toa_frames.append(f)
                        one_by_one.append((r, k, *f))
                        k += 1
            if react[q] and state == "ok":
                if bad_reply[q]:
                    b = int(fp[q])
                    collect.note(
                        "origin.rejected",
                        "the origin answered HTTP 400 to the PROXY header: it parsed it as a "
                        "request",
                        row[b],
                        row[b + 1],
                    )
                if silent[r]:
                    collect.note(
                        "origin.rejected",
                        f"the origin sent {'RST' if row[L.C0_RST] else 'FIN'} right after the "
                        "PROXY header, with no reply",
                        row[L.C0_FRAME],
                        row[L.C0_CAP],
                    )
            if collect.items:
                hdr_notes[r] = collect.items

    # ---- findings, each row's in the order _compact_tcp notes them (only that order
    # matters: the table sorts findings per flow, ties kept in the order they were noted)
    f_row, f_code, f_msg = block.f_row, block.f_code, block.f_msg
    f_frame, f_cap = block.f_frame, block.f_capture

    def add(r: int, note: tuple[str, str, int | None, int]) -> None:
        f_row.append(r)
        f_code.append(note[0])
        f_msg.append(note[1])
        f_frame.append(note[2])
        f_cap.append(note[3])

    def add_all(notes: dict[int, tuple[str, str, int | None, int]]) -> None:
        f_row.extend(notes)
        columns = zip(*notes.values(), strict=True)
        for values, out in zip(columns, (f_code, f_msg, f_frame, f_cap), strict=True):
            out.extend(values)

    for r, items in hdr_notes.items():
        for note in items:
            add(r, note)
    if toa_late_note:
        add_all(toa_late_note)
    # no client address carried and the origin hung up on the first data
    quiet = np.flatnonzero(silent & ~has_toa & start_seen & ~has_hdr)
    for r, rst, fr, cap in zip(
        quiet.tolist(),
        M[quiet, L.C0_RST].tolist(),
        M[quiet, L.C0_FRAME].tolist(),
        M[quiet, L.C0_CAP].tolist(),
        strict=True,
    ):
        what = "RST" if rst else "FIN"
        add(
            r,
            (
                "origin.closed_silently",
                f"the origin sent {what} after the first data, without replying",
                fr,
                cap,
            ),
        )
    mid = np.flatnonzero(~start_seen)
    for r, fr, cap in zip(
        mid.tolist(), M[mid, L.F_FIRST_FRAME].tolist(), M[mid, L.F_CAPTURE].tolist(), strict=True
    ):
        add(r, ("flow.mid_stream", "no SYN or SYN-ACK captured for this connection", fr, cap))

    no = np.zeros(n, dtype=bool)
    m, st = verdict(hdr_status, hdr_version, has_toa, no, no, start_seen, _attempts(M, og))
    c["method"] = np.array([code(x) for x in METHODS], dtype=np.int32)[m]
    c["client_ip"] = client_ip
    c["client_port"] = client_port
    c["proxy_ip"] = proxy_ip
    c["proxy_port"] = proxy_port
    c["pp_command"] = pp_command
    c["pp_family"] = pp_family
    c["tlvs"] = tlvs
    # a tunnel's text is 1 + its code in this vocabulary (flows/tunnels.py)
    tun = M[:, L.F_TUN_TEXT]
    c["tunnel"] = np.where(tun > 0, tun - 1, vocab.code("")).astype(np.int32)
    c["status"] = np.array([code(x) for x in STATUSES], dtype=np.int32)[st]
    c["header_frame"] = (hf_cap, hf_frame)
    c["toa_kind"] = toa_kind
    if one_by_one:
        carried.append(tuple(np.array(x) for x in zip(*one_by_one, strict=True)))  # type: ignore[arg-type]
    if carried:
        who, order, caps, frames = (
            np.concatenate(x).astype(np.int64) for x in zip(*carried, strict=True)
        )
    else:
        who = order = caps = frames = np.zeros(0, dtype=np.int64)
    by_row = np.lexsort((order, who))
    c["header_frames"] = (
        np.bincount(who, minlength=n).astype(np.int32),
        caps[by_row],
        frames[by_row],
    )
    return block


class _Collect:
    """The findings of one row, each code once (as FlowBase.note records them)."""

    __slots__ = ("items", "seen")

    def __init__(self) -> None:
        self.items: list[tuple[str, str, int | None, int]] = []
        self.seen: set[str] = set()

    def note(self, code: str, message: str, frame: int | None, capture: int) -> None:
        if code not in self.seen:
            self.seen.add(code)
            self.items.append((code, message, frame, capture))


def row_header(values: Sequence[int]) -> Any:
    """The HeaderSeen of a header the kernel read (a flow-table row with F_HEADER == HDR_ROW),
    as ``pcapip.flows.headers.seen_direct`` makes it from the dissector's parse."""
    from pcapip.dissect.proxy_model import ProxyHeader
    from pcapip.flows.state import HeaderSeen

    ver, fam, length = values[L.HK_VER], values[L.HK_FAM], values[L.HK_LEN]
    if ver == 2 and fam == 0:
        h = ProxyHeader(2, "LOCAL", "UNSPEC", "UNSPEC", length=16)
    else:
        src = socket.inet_ntop(socket.AF_INET, values[L.HK_SRC].to_bytes(4, "big"))
        dst = socket.inet_ntop(socket.AF_INET, values[L.HK_DST].to_bytes(4, "big"))
        family, transport = ("TCP4", "STREAM") if ver == 1 else ("INET", "STREAM")
        if ver == 2 and fam & 0x0F != 1:
            transport = "DGRAM"
        h = ProxyHeader(
            ver,
            "PROXY",
            family,
            transport,
            src,
            dst,
            values[L.HK_SPORT],
            values[L.HK_DPORT],
            length,
        )
    frames = [(values[L.HK_CAP], values[L.HK_FRAME])]
    return HeaderSeen("ok", ver, h, None, (), length, frames, 1)


def _attempts(M: np.ndarray, og: np.ndarray) -> np.ndarray:
    """What became of each flow as a connection attempt (``attempts.attempt_status``:
    0, or 1 + index in ATTEMPT_STATUSES; ``rows._attempt`` asks the same of one flow)."""
    nc = M[:, L.F_NCLOSES]
    c0 = (nc > 0) & (M[:, L.C0_SIDE] == og)
    c1 = (nc > 1) & (M[:, L.C1_SIDE] == og)
    e0 = (nc > 0) & (M[:, L.C0_SIDE] != og)
    e1 = (nc > 1) & (M[:, L.C1_SIDE] != og)
    return attempt_status(
        M[:, L.F_SYN_SEQ] >= 0,
        M[:, L.F_SYNACK] != 0,
        M[:, L.F_HS],
        (M[:, L.F_PAY0] != 0) | (M[:, L.F_PAY1] != 0),
        e0 | e1,
        c0 | c1,
        (c0 & (M[:, L.C0_RST] != 0)) | (c1 & (M[:, L.C1_RST] != 0)),
    )
