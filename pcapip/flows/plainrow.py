"""A slice of plain flow-table rows as the columnar row builder reads them.

``Plain`` holds the table's fields of the rows and what every part of a row derives
from them (which side is the egress, what was seen); ``Client`` the columns of what
carried the client address, filled by the TOA and PROXY parts
(``pcapip.flows.columnar``, ``pcapip.flows.plainheader``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pcapip.flows import kernel_plain as KP
from pcapip.flows import layout as L
from pcapip.flows.attempts import attempt_status
from pcapip.flows.packed import NO_IP, NULL, Vocab
from pcapip.flows.verdict import NO_HEADER


class Plain:
    """The facts of a slice of plain flow-table rows (``kernel_plain.plain_rows``, one pass
    over the table's rows) and what every part of the output row derives from them."""

    def __init__(self, tab: Any, rows: np.ndarray) -> None:
        self.S, self.X = tab.S, tab.X
        self.rows = rows = np.ascontiguousarray(rows, dtype=np.int64)
        self.n = rows.size
        self.F = F = np.empty((KP.N_PLAIN, self.n), dtype=np.int64)
        tab.plain_fn(self.S, self.X, rows, F)
        self.ts_set, self.ta_set, self.td_set = F[KP.PL_TS] != 0, F[KP.PL_TA] != 0, F[KP.PL_TD] != 0
        self.egress, self.og = F[KP.PL_EGRESS], F[KP.PL_OG]
        self.kind = F[KP.PL_KIND]
        self.has_hdr = self.kind != 0
        self.has_toa = self.ts_set | self.ta_set | self.td_set
        # the TOA a receiving module most likely uses: handshake ACK, else SYN, else data
        self.g = np.where(self.ta_set, L.TA_SET, np.where(self.ts_set, L.TS_SET, L.TD_SET))
        self.start_seen = F[KP.PL_START_SEEN] != 0
        self.hs_done = F[KP.PL_HS_DONE] != 0
        self.pay_eg = F[KP.PL_SPOKE] != 0
        self.silent = F[KP.PL_SILENT] != 0

    def whole(self, sub: np.ndarray) -> np.ndarray:
        """Every field of rows ``sub``, numbered as in layout."""
        r = self.rows[sub]
        return np.concatenate((np.take(self.S, r, axis=0), self.X[r]), axis=1)

    def field(self, sub: np.ndarray, f: int) -> np.ndarray:
        """Flow-table field ``f`` (of S) of rows ``sub``."""
        return self.S[self.rows[sub], f]

    def attempts(self) -> np.ndarray:
        """What became of each flow as a connection attempt (``attempts.attempt_status``)."""
        F = self.F
        return attempt_status(
            F[KP.PL_SYN] != 0,
            F[KP.PL_SYNACK] != 0,
            F[KP.PL_HS],
            F[KP.PL_ANY_PAY] != 0,
            F[KP.PL_E_CLOSED] != 0,
            F[KP.PL_O_CLOSED] != 0,
            F[KP.PL_O_RST] != 0,
        )

    def ends(self, vocab: Vocab, c: dict[str, Any]) -> None:
        """The columns every row has: where, when, the two ends, counters, the handshake."""
        F, n = self.F, self.n
        e_ip = vocab.ip_from_halves(F[KP.PL_E_HI], F[KP.PL_E_LO])
        o_ip = vocab.ip_from_halves(F[KP.PL_O_HI], F[KP.PL_O_LO])
        c["capture"] = F[KP.PL_CAPTURE]
        c["first_frame"] = F[KP.PL_FIRST_FRAME]
        c["transport"] = np.full(n, vocab.code("tcp"), dtype=np.int32)
        c["start_ns"] = F[KP.PL_START]
        c["end_ns"] = F[KP.PL_END]
        c["egress_ip"] = e_ip
        c["egress_port"] = F[KP.PL_E_PORT]
        c["origin_ip"] = o_ip
        c["origin_port"] = F[KP.PL_O_PORT]
        c["packets"] = F[KP.PL_PACKETS]
        c["bytes"] = F[KP.PL_BYTES]
        c["spoke"] = self.pay_eg
        c["carries_client"] = self.has_toa | self.has_hdr
        c["toa_carried"] = self.has_toa
        c["hs_done"] = self.hs_done
        c["hs_toa"] = F[KP.PL_HS_TOA] != 0
        c["toa_in_syn"] = self.ts_set
        c["no_room"] = (F[KP.PL_NR_CAP], F[KP.PL_NR_FRAME])


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
