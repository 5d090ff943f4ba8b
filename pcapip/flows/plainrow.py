"""A slice of plain flow-table rows as the columnar row builder reads them.

``Plain`` holds the table's fields of the rows and what every part of a row derives
from them (which side is the egress, what was seen); ``Client`` the columns of what
carried the client address, filled by the TOA and PROXY parts
(``pcapip.flows.columnar``, ``pcapip.flows.plainheader``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pcapip.flows import layout as L
from pcapip.flows.packed import NO_IP, NULL, Vocab
from pcapip.flows.state import HS_DONE
from pcapip.flows.verdict import NO_HEADER


class Plain:
    """The flow table's fields of a slice of plain rows, and what every part of the row
    derives from them (which side is the egress, what was seen)."""

    def __init__(self, S: np.ndarray, X: np.ndarray, rows: np.ndarray, vocab: Vocab) -> None:
        # the flow table's fields for every row; its second part (a TOA option's or a
        # PROXY header's fields) only for the rows that have one (``whole``): a flood has none
        self.M = M = S[rows]
        self.X, self.rows, self.n = X, rows, len(rows)
        # (three flat takes: a gather of a few columns over scattered rows by 2-d fancy
        # indexing costs several times as much)
        flat, at = X.reshape(-1), rows * X.shape[1] - L.XBASE
        self.ts_set, self.ta_set, self.td_set = (
            flat[at + b] != 0 for b in (L.TS_SET, L.TA_SET, L.TD_SET)
        )
        self.a_port, self.b_port = M[:, L.K_APORT], M[:, L.K_BPORT]
        self.egress = egress = M[:, L.F_EGRESS]
        guess = np.where(
            self.a_port != self.b_port,
            np.where(self.a_port > self.b_port, 0, 1),
            1 - M[:, L.F_FIRST_SIDE],
        )
        self.eg = eg = np.where(egress >= 0, egress, guess)
        self.og = og = 1 - eg
        self.a_is_e = a_is_e = eg == 0
        self.kind = M[:, L.F_HEADER]
        self.has_hdr = self.kind != 0
        self.has_toa = self.ts_set | self.ta_set | self.td_set
        # the TOA a receiving module most likely uses: handshake ACK, else SYN, else data
        self.g = np.where(self.ta_set, L.TA_SET, np.where(self.ts_set, L.TS_SET, L.TD_SET))
        self.start_seen = (M[:, L.F_SYN_SEQ] >= 0) | (M[:, L.F_SYNACK] != 0)
        self.hs_done = M[:, L.F_HS] == HS_DONE
        self.pay_eg = np.where(a_is_e, M[:, L.F_PAY0], M[:, L.F_PAY1]) != 0
        # the origin closed first, having sent nothing, after data from the egress side
        self.silent = (
            (egress >= 0)
            & self.pay_eg
            & (M[:, L.F_NCLOSES] > 0)
            & (M[:, L.C0_SIDE] == og)
            & ((np.where(og == 0, M[:, L.C0_P0], M[:, L.C0_P1])) == 0)
            & ((np.where(a_is_e, M[:, L.C0_P0], M[:, L.C0_P1])) != 0)
        )

    def whole(self, sub: np.ndarray) -> np.ndarray:
        """Every field of rows ``sub``, numbered as in layout."""
        return np.concatenate((self.M[sub], self.X[self.rows[sub]]), axis=1)

    def ends(self, vocab: Vocab, c: dict[str, Any]) -> None:
        """The columns every row has: where, when, the two ends, counters, the handshake."""
        M, n, a_is_e, hs_done = self.M, self.n, self.a_is_e, self.hs_done
        side = lambda a, b: np.where(a_is_e, M[:, a], M[:, b])  # noqa: E731 (egress's)
        e_ip = vocab.ip_from_halves(side(L.K_AHI, L.K_BHI), side(L.K_ALO, L.K_BLO))
        o_ip = vocab.ip_from_halves(side(L.K_BHI, L.K_AHI), side(L.K_BLO, L.K_ALO))
        c["capture"] = M[:, L.F_CAPTURE]
        c["first_frame"] = M[:, L.F_FIRST_FRAME]
        c["transport"] = np.full(n, vocab.code("tcp"), dtype=np.int32)
        c["start_ns"] = M[:, L.F_START]
        c["end_ns"] = M[:, L.F_END]
        c["egress_ip"] = e_ip
        c["egress_port"] = np.where(a_is_e, self.a_port, self.b_port)
        c["origin_ip"] = o_ip
        c["origin_port"] = np.where(a_is_e, self.b_port, self.a_port)
        c["packets"] = M[:, L.F_PACKETS]
        c["bytes"] = M[:, L.F_BYTES]
        c["spoke"] = self.pay_eg
        c["carries_client"] = self.has_toa | self.has_hdr
        c["toa_carried"] = self.has_toa
        c["hs_done"] = hs_done
        c["hs_toa"] = M[:, L.F_HS_TOA] != 0
        c["toa_in_syn"] = self.ts_set
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


Note = tuple[str, str, "int | None", int]  # (code, message, frame, capture)


class Client:
    """What carried the client address, per row: the PROXY header's fields for the verdict
    (``pcapip.flows.verdict``), the client and proxy, where it was read, and the packets
    that carried it ((row, order within the row, capture, frame) in parts, sorted into
    per-row lists at the end). Texts are vocabulary codes, missing numbers NULL."""

    def __init__(self, n: int, vocab: Vocab) -> None:
        self.vocab = vocab
        self.hdr_status = np.full(n, NO_HEADER, dtype=np.int64)
        self.hdr_version = np.zeros(n, dtype=np.int64)
        self.client_ip = np.full(n, NO_IP, dtype=np.int64)
        self.client_port = np.full(n, NULL, dtype=np.int64)
        self.proxy_ip = np.full(n, NO_IP, dtype=np.int64)
        self.proxy_port = np.full(n, NULL, dtype=np.int64)
        self.pp_command = np.full(n, -1, dtype=np.int32)
        self.pp_family = np.full(n, -1, dtype=np.int32)
        self.tlvs = np.full(n, vocab.code(""), dtype=np.int32)
        self.hf_cap = np.full(n, NULL, dtype=np.int64)  # where the client address was read
        self.hf_frame = np.full(n, NULL, dtype=np.int64)
        self.toa_kind = np.full(n, NULL, dtype=np.int64)  # kind * 256 + length of its TOA
        self.carried: list[tuple[np.ndarray, ...]] = []
        self.one_by_one: list[tuple[int, int, int, int]] = []  # (for rows taken one by one)

    def text_code(self, text: str | None) -> int:
        return -1 if text is None else self.vocab.code(text)

    def clients(self, c: dict[str, Any]) -> None:
        """Hand the client, proxy and header columns over to the block."""
        for name in ("client_ip", "client_port", "proxy_ip", "proxy_port", "pp_command"):
            c[name] = getattr(self, name)
        c["pp_family"], c["tlvs"] = self.pp_family, self.tlvs

    def frames(self, c: dict[str, Any], n: int) -> None:
        """Hand over where the client was read and the packets that carried it, as
        per-row lists."""
        c["header_frame"] = (self.hf_cap, self.hf_frame)
        c["toa_kind"] = self.toa_kind
        carried = self.carried
        if self.one_by_one:
            carried.append(tuple(np.array(x) for x in zip(*self.one_by_one, strict=True)))
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
