"""Counting why frames were not (fully) decoded, for summaries and reports."""

from __future__ import annotations

import numpy as np

from .columns import ST_NO_L4, STATUS_NAMES, Packets


def status_counts(packets: Packets) -> dict[str, int]:
    """Counts per reason, so nothing is ever dropped silently.

    Keys: ``packets`` (rows), ``ok`` (status 0: IP and TCP/UDP fully
    decoded), ``tcp``/``udp`` (transport header decoded, payload possibly cut),
    one key per ST_* bit (``unknown_link``, ``not_ip``, ``fragment``,
    ``truncated``, ``not_tcp_udp``, ``bad_header``, ``payload_cut``) counting
    rows with that bit, and ``caplen_gt_origlen`` (damaged record headers
    claiming more captured bytes than were on the wire). All keys are always
    present; sum dicts of several batches with ``collections.Counter``.
    """
    st = packets.status
    l4 = (st & ST_NO_L4) == 0
    out = {
        "packets": int(st.shape[0]),
        "ok": int(np.count_nonzero(st == 0)),
        "tcp": int(np.count_nonzero(l4 & (packets.proto == 6))),
        "udp": int(np.count_nonzero(l4 & (packets.proto == 17))),
    }
    for bit, name in STATUS_NAMES.items():
        out[name] = int(np.count_nonzero(st & bit))
    out["caplen_gt_origlen"] = int(np.count_nonzero(packets.caplen > packets.origlen))
    return out
