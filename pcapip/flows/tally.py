"""What the table counts and says per flow: the findings in flow order, the
``findings`` column (a bit mask of codes per flow, spelled once per distinct mask)
and the summary's counters, a slice of packed rows at a time (never a list per row).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pcapip.flows.columns import METHODS, STATUSES
from pcapip.flows.crossflow import Cols, Extra
from pcapip.flows.findings import CATALOGUE, ORDER, join_codes
from pcapip.flows.packed import NULL, PackedRows, Vocab, distinct
from pcapip.flows.reorder import SLICE

# the findings column is a bit mask of codes per flow
assert len(ORDER) < 63


def findings_by_flow(p: PackedRows, vocab: Vocab, flow_id: Any, extra: Extra) -> dict[str, np.ndarray]:
    """Every finding, per flow in order of its packet (ties: the order they were noted):
    the rows' own first, then the cross-flow ones, code by code."""
    f = p.cols
    flow = [flow_id(f["f_row"])]
    codes = [f["f_code"]]
    msgs = [f["f_msg"]]
    frames = [f["f_frame"]]
    caps = [f["f_cap"]]
    for rows, code, texts, fr, cp in extra.parts:
        flow.append(flow_id(rows))
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


def findings_column(n: int, fnd: dict[str, np.ndarray], vocab: Vocab) -> Iterator[np.ndarray]:
    """Each flow's distinct codes, in catalogue order, ``;``-joined (vocabulary codes), a
    slice of flows at a time."""
    empty = vocab.code("")
    if fnd["code"].size == 0:
        for lo in range(0, max(n, 1), SLICE):  # (an empty table: one empty slice)
            yield np.full(min(n, lo + SLICE) - lo, empty, dtype=np.int32)
        return
    present = distinct(fnd["code"]).tolist()
    texts = vocab.texts
    by_code = sorted(present, key=lambda k: ORDER[texts[k]])
    bit = np.zeros(max(present) + 1, dtype=np.int64)
    for rank, k in enumerate(by_code):
        bit[k] = 1 << rank
    # per flow with findings: the bit mask of its codes
    flows, first = np.unique(fnd["flow"], return_index=True)
    mask = np.bitwise_or.reduceat(bit[fnd["code"]], first)
    uniq, inv = np.unique(mask, return_inverse=True)
    names = np.asarray(
        [
            vocab.code(join_codes(texts[k] for r, k in enumerate(by_code) if m >> r & 1))
            for m in uniq.tolist()
        ],
        dtype=np.int32,
    )[inv]
    for lo in range(0, n, SLICE):
        hi = min(n, lo + SLICE)
        col = np.full(hi - lo, empty, dtype=np.int32)
        a, b = np.searchsorted(flows, [lo + 1, hi + 1])
        col[flows[a:b] - 1 - lo] = names[a:b]
        yield col


def counts(p: PackedRows, vocab: Vocab, fnd: dict[str, np.ndarray]) -> dict[str, int]:
    codes = vocab.codes
    tcp_code = codes.get("tcp", -2)
    out = dict.fromkeys(
        ["flows_tcp", "flows_udp", "syn_recv_sock_toa", "syn_recv_sock_no_toa", "toa_in_syn"]
        + ["flows_with_toa"],
        0,
    )
    per: dict[str, np.ndarray] = {}
    for lo in range(0, len(p), SLICE):
        c = lambda name, lo=lo: p.cols.slice(name, lo, lo + SLICE)  # noqa: E731
        tcp = c("transport") == tcp_code
        done = c("hs_done") & tcp
        hs_toa = c("hs_toa")
        out["flows_tcp"] += int(np.count_nonzero(tcp))
        out["flows_udp"] += int(np.count_nonzero(c("transport") == codes.get("udp", -2)))
        out["syn_recv_sock_toa"] += int(np.count_nonzero(done & hs_toa))
        out["syn_recv_sock_no_toa"] += int(np.count_nonzero(done & ~hs_toa))
        out["toa_in_syn"] += int(np.count_nonzero(c("toa_in_syn")))
        out["flows_with_toa"] += int(np.count_nonzero(c("toa_carried")))
        for col in ("method", "status"):
            v = c(col)
            k = np.bincount(v[v >= 0], minlength=len(vocab.texts))
            per[col] = k if col not in per else per[col] + k
    levels = {"info": 0, "warning": 0, "error": 0}
    if fnd["code"].size:
        found = np.bincount(fnd["code"])
        for k in np.flatnonzero(found).tolist():
            levels[CATALOGUE[vocab.texts[k]].level.label] += int(found[k])
    for label, k in levels.items():
        out[f"findings_{label}"] = k

    def count(col: str, text: str) -> int:
        k = codes.get(text)
        return 0 if k is None or col not in per or k >= per[col].size else int(per[col][k])

    for m in METHODS:
        out[f"method_{m}"] = count("method", m)
    for st in STATUSES:
        out[f"status_{st}"] = count("status", st)
    return {"flows": len(p), **out}


def gathered(p: PackedRows, test: str, names: Sequence[str]) -> list[np.ndarray]:
    """Columns ``names`` of the rows whose ``test`` column is true (or not NULL)."""
    c = Cols(p.cols, len(p))
    rows = c.where(lambda r: r(test) != NULL if r(test).dtype == np.int64 else r(test))
    return [c.at(name, rows) for name in names]
