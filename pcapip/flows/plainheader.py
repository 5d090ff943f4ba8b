"""The PROXY header of a plain flow-table row: the clean ones the compiled loop read, all
columns at once; every other one (a header Python parsed, one beside a TOA, the origin's
reaction to it) row by row, with the notes ``pcapip.flows.rows`` gives a TcpFlow.
"""

from __future__ import annotations

import _socket as socket  # (the C module: inet_ntop/aton without socket.py's import cost)
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcapip.flows import headers as _hdr
from pcapip.flows import layout as L
from pcapip.flows.findings import Finding
from pcapip.flows.packed import NULL
from pcapip.flows.plainrow import Client, Plain
from pcapip.flows.rows import Note, Notes, disagree, header_notes, origin_rejected
from pcapip.flows.verdict import header_status


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


def proxy_headers(
    p: Plain, cl: Client, P: np.ndarray, headers: dict[int, Any], late: dict[int, Note]
) -> dict[int, list[Finding]]:
    """The PROXY headers read from the first segment: the clean ones the kernel read, on
    flows without TOA, all columns at once; each other row on its own. Returns each row's
    notes (a row's late-TOA note moves into them, after its header's)."""
    hdr_rows = np.flatnonzero(p.has_hdr)
    notes: dict[int, list[Finding]] = {}
    if hdr_rows.size == 0:
        return notes
    Mh = p.whole(hdr_rows)
    # what the origin did first: an HTTP 400 reply, or a close without a reply
    o_h = p.og[hdr_rows]
    fp = L.FP0_FRAME + o_h * L.FP_WIDTH
    replied = np.where(o_h == 0, Mh[:, L.F_PAY0], Mh[:, L.F_PAY1]) != 0
    react = (p.egress[hdr_rows] >= 0) & p.pay_eg[hdr_rows]
    bad_reply = replied & _http_400(P, p.rows[hdr_rows], o_h, Mh[np.arange(hdr_rows.size), fp + 2])
    kr = p.kind[hdr_rows] == L.HDR_ROW
    local = kr & (Mh[:, L.HK_VER] == 2) & (Mh[:, L.HK_FAM] == 0)
    simple = np.flatnonzero(kr & ~local & ~p.has_toa[hdr_rows])
    if simple.size:
        _simple_headers(cl, hdr_rows[simple], Mh[simple])
    others = np.ones(hdr_rows.size, dtype=bool)
    others[simple] = False
    rows_l = p.rows.tolist()
    # each remaining row on its own: the header notes, then TOA against header, the
    # origin's reaction (all of _compact_tcp that a settled header can raise)
    for q in np.flatnonzero(others | (react & (bad_reply | p.silent[hdr_rows]))).tolist():
        r = int(hdr_rows[q])
        collect = Notes()
        row = Mh[q].tolist()
        hs = row_header(row) if kr[q] else headers[rows_l[r]]
        if others[q]:  # (else the columns are set above; only the origin's reaction left)
            _one_header(p, cl, r, row, hs, collect, late)
        if react[q] and hs.state == "ok":
            f = int(fp[q])
            close = ("RST" if row[L.C0_RST] else "FIN", row[L.C0_FRAME], row[L.C0_CAP])
            origin_rejected(
                collect,
                (row[f], row[f + 1]) if bad_reply[q] else None,
                close if p.silent[r] else None,
            )
        if collect.findings:
            notes[r] = collect.findings
    return notes


def _simple_headers(cl: Client, rs: np.ndarray, Ms: np.ndarray) -> None:
    """Rows ``rs`` carry a clean PROXY header with addresses the kernel read (fields ``Ms``)
    and no TOA: their columns, all at once."""
    code = cl.vocab.code
    v1 = Ms[:, L.HK_VER] == 1
    cl.hdr_version[rs] = Ms[:, L.HK_VER]
    cl.hdr_status[rs] = header_status("ok")
    cl.pp_command[rs] = code("PROXY")
    cl.pp_family[rs] = np.where(v1, code("TCP4"), code("INET"))
    cl.client_ip[rs] = Ms[:, L.HK_SRC]
    cl.client_port[rs] = Ms[:, L.HK_SPORT]
    cl.proxy_ip[rs] = Ms[:, L.HK_DST]
    cl.proxy_port[rs] = Ms[:, L.HK_DPORT]
    cl.hf_cap[rs] = Ms[:, L.HK_CAP]
    cl.hf_frame[rs] = Ms[:, L.HK_FRAME]
    cl.carried.append((rs, np.full(rs.size, 3), cl.hf_cap[rs], cl.hf_frame[rs]))


def _one_header(
    p: Plain,
    cl: Client,
    r: int,
    row: list[int],
    hs: Any,
    collect: Notes,
    late: dict[int, Note],
) -> None:
    """Row ``r``'s header ``hs`` (a HeaderSeen) into its columns, its notes into
    ``collect``; against its TOA, if it has one."""
    vocab, h, capture = cl.vocab, hs.header, row[L.F_CAPTURE]
    cl.hdr_version[r] = hs.version or 1
    cl.hdr_status[r] = header_status(hs.state)
    c_ip, c_port, p_ip, p_port = _hdr.client_fields(hs)
    if h is not None:
        cl.pp_command[r], cl.pp_family[r] = cl.text_code(h.command), cl.text_code(h.family)
        if h.tlvs:
            cl.tlvs[r] = vocab.code(_hdr.tlv_text(h))
    cl.proxy_ip[r] = vocab.ip_code(p_ip)
    cl.proxy_port[r] = NULL if p_port is None else p_port
    hframe = hs.frames[0] if hs.frames else None
    header_notes(collect, hs, capture)
    toa_frames: list[tuple[int, int]] = []
    if p.has_toa[r]:
        # the TOA a receiving module uses (as in the TOA columns above)
        t = int(p.g[r])
        toa_ip = socket.inet_ntop(socket.AF_INET, row[t + L.T_IP].to_bytes(4, "big"))
        toa_port = row[t + L.T_PORT]
        for b in (L.TS_SET, L.TA_SET, L.TD_SET):
            f = (row[b + L.T_CAP], row[b + L.T_FRAME])
            if row[b] and f not in toa_frames:
                toa_frames.append(f)
        if hs.state != "ok" and c_ip is None:
            c_ip, c_port = toa_ip, toa_port
            hframe = (int(cl.hf_cap[r]), int(cl.hf_frame[r]))
        elif c_ip is not None and (toa_ip, toa_port) != (c_ip, c_port):
            disagree(collect, hs, (toa_ip, toa_port, row[t + L.T_FRAME]), (c_ip, c_port), capture)
        if r in late:
            collect.note(*late.pop(r))
    cl.client_ip[r] = vocab.ip_code(c_ip)
    cl.client_port[r] = NULL if c_port is None else c_port
    cl.hf_cap[r], cl.hf_frame[r] = hframe if hframe is not None else (NULL, NULL)
    k = 3
    for f in hs.frames:
        if f not in toa_frames:
            toa_frames.append(f)
            cl.one_by_one.append((r, k, *f))
            k += 1


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
