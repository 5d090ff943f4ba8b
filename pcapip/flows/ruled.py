"""``--rules`` over the flow table: each flow's forwarding rule and the findings where the
wire disagrees with it.

``pcapip.rules.RuleSet.judge`` decides for one flow; here the packed rows are read a slice
at a time and each slice's distinct (protocol, origin, method, PROXY destination port,
progress) combinations are judged once, so a flood of ten million flows asks a few times.
The pass runs before the rows move into flow order, and its column moves with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from pcapip.flows.crossflow import Cols, Extra, missing_client, where_read
from pcapip.flows.packed import NULL, Vocab
from pcapip.flows.reorder import SLICE
from pcapip.flows.rows import FlowRow
from pcapip.rules import RuleSet, Verdict

_MIX = np.uint64(0x9E3779B97F4A7C15)


def _distinct_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D int64 array and each row's index among them: one sort of
    a hash of each row, checked exactly (a collision falls back to comparing whole rows;
    ``np.unique(axis=0)`` alone sorts structured rows, 30 times slower)."""
    h = np.zeros(keys.shape[0], dtype=np.uint64)
    for j in range(keys.shape[1]):
        h = (h ^ keys[:, j].astype(np.uint64)) * _MIX
        h ^= h >> np.uint64(29)
    _, first, inv = np.unique(h, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    if not (keys == keys[first][inv]).all():
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        return uniq, inv.reshape(-1)
    return keys[first], inv


def _due(hs_done: Any, spoke: Any) -> tuple[Any, Any]:
    """(a TOA due, a PROXY header due): the flow got where its client address would have
    been (``missing_client``'s rule); scalars or arrays."""
    return missing_client(True, False, hs_done, spoke), missing_client(False, True, hs_done, spoke)


def _checks_itself(client_ip: Any, client_port: Any, egress_ip: Any, egress_port: Any) -> Any:
    """A proxy's health check whose header names its own connection (``proxy.self_addressed``):
    its header's destination is the origin, not a forwarding port; scalars or arrays."""
    return (client_port == egress_port) & (client_ip == egress_ip)


def judge_row(rules: RuleSet, r: FlowRow) -> Verdict:
    """One flow's verdict, asked as the table's pass asks it (``pcapip live``'s lines)."""
    header = r.method in ("ppv1", "ppv2") and not _checks_itself(
        r.client_ip, r.client_port, r.egress_ip, r.egress_port
    )
    toa_due, pp_due = _due(r.hs_done, r.spoke)
    return rules.judge(
        r.transport, r.origin_ip, r.origin_port, r.method,
        r.proxy_port if header else None, bool(toa_due), bool(pp_due),
    )  # fmt: skip


def _verdicts(read: Any, vocab: Vocab, rules: RuleSet) -> tuple[np.ndarray, list[Verdict]]:
    """Per row of a slice, an index into the slice's distinct verdicts."""
    method = read("method")
    pp = vocab.codes.get("ppv1", -2), vocab.codes.get("ppv2", -2)
    # the header's destination port only matters with a header
    own = _checks_itself(read("client_ip"), read("client_port"), read("egress_ip"), read("egress_port"))
    dport = np.where(np.isin(method, pp) & ~own, read("proxy_port"), NULL)
    toa_due, pp_due = _due(read("hs_done"), read("spoke"))
    keys = np.stack(
        [
            read("transport").astype(np.int64),
            read("origin_ip").astype(np.int64),
            read("origin_port").astype(np.int64),
            method.astype(np.int64),
            dport.astype(np.int64),
            toa_due.astype(np.int64),
            pp_due.astype(np.int64),
        ],
        axis=1,
    )
    if keys.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), []
    uniq, inv = _distinct_rows(keys)
    texts = vocab.texts
    ips = vocab.ip_decode(uniq[:, 1])
    out = [
        rules.judge(
            texts[t],
            ip,
            None if port == NULL else port,
            texts[m],
            None if dp == NULL else dp,
            bool(ct),
            bool(cp),
        )
        for (t, _, port, m, dp, ct, cp), ip in zip(uniq.tolist(), ips, strict=True)
    ]
    return inv, out


class _Through:
    """A store read through ``read(name, lo, hi)``: the table may swap the store it writes
    the column into (to memory, on a full disk) while this pass reads it."""

    def __init__(self, read: Any) -> None:
        self.slice = read


def judge_rows(
    read: Any, n: int, vocab: Vocab, rules: RuleSet, out: Extra
) -> Iterator[np.ndarray]:
    """Each of ``n`` rows judged against ``rules``, a slice at a time, in one pass: yields
    the ``rule`` column (vocabulary codes of each rule's label, "" for none) and adds
    ``rule.mismatch`` and ``rule.unmatched`` to ``out`` (rows numbered as ``read`` has
    them). ``read(name, lo, hi)``: rows ``lo:hi`` of a packed column."""
    c = Cols(_Through(read), n)
    for lo in range(0, n, SLICE):
        hi = min(n, lo + SLICE)
        inv, verdicts = _verdicts(lambda name, lo=lo, hi=hi: read(name, lo, hi), vocab, rules)
        for code in ("rule.mismatch", "rule.unmatched"):
            which = np.asarray([v.code == code for v in verdicts], dtype=bool)
            if not which.any():
                continue
            rows = np.flatnonzero(which[inv]) + lo
            msgs = [verdicts[k].message for k in inv[rows - lo].tolist()]
            if code == "rule.mismatch":
                frames, caps = where_read(c, rows)
            else:
                frames, caps = c.at("first_frame", rows), c.at("capture", rows)
            out.add(rows, code, msgs, frames, caps)
        labels = np.asarray(
            [vocab.code(v.rule.label if v.rule is not None else "") for v in verdicts],
            dtype=np.int32,
        )
        yield labels[inv] if labels.size else np.zeros(hi - lo, dtype=np.int32)
