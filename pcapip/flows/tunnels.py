"""The tunnel a packet was found in, as the flow key holds it and the row shows it.

Two tenants may use the same inner addresses and ports (two VXLAN VNIs, two GRE
keys): they are two connections with two clients, so the flow key carries the
tunnel. Each tunnel is a small number: 1 + the code of its ``tunnel`` text
(``pcapip.decode.tunnels.tunnel_label``) in the tracker's vocabulary, 0 for none;
rows are coded in that vocabulary too, so a flow's ``tunnel`` column is that code again.

MPLS labels name no tenant: a label is chosen by the next router, hop by hop and
direction by direction, so the two directions of one connection carry different
stacks. A key is the tunnel's tenant (``pcapip.decode.tunnels.tenant``: ``mpls`` alone
for an MPLS connection), the column the labels of its first packet; for every other
tunnel the two are the same.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pcapip.decode.columns import Packets
from pcapip.decode.tunnels import ENCAPSULATIONS, tenant, tunnel_label, udp_tunnel_ports
from pcapip.flows.packed import Vocab


class TunnelCodes:
    """Each packet's tunnel key, and packets counted per encapsulation opened."""

    __slots__ = ("vocab", "ports", "_known", "_zeros", "packets")

    def __init__(self, vocab: Vocab, vxlan_ports: tuple[int, ...] = ()) -> None:
        self.vocab = vocab
        #: UDP destination port -> the tunnel the decoder opens there (``--vxlan-port`` adds)
        self.ports = udp_tunnel_ports(vxlan_ports)
        self._known: dict[tuple[int, int], tuple[int, int]] = {}
        self._zeros = np.zeros(0, dtype=np.int64)
        self.packets: Counter[str] = Counter()  # encapsulation name -> packets inside one

    def of(self, p: Packets) -> tuple[np.ndarray, np.ndarray]:
        """int64 tunnel keys and ``tunnel`` texts of every packet of ``p`` (without tunnels,
        one zero array shared between batches: not to be written, and not flagged read-only,
        which the compiled loop's signature would refuse)."""
        n = len(p)
        kinds = p.tun_kind
        if not kinds.any():
            if self._zeros.size < n:
                self._zeros = np.zeros(max(n, 65536), dtype=np.int64)
            return self._zeros[:n], self._zeros[:n]
        self._count(p.tun_seen)
        keys = np.zeros(n, dtype=np.int64)
        texts = np.zeros(n, dtype=np.int64)
        for kind in np.flatnonzero(np.bincount(kinds)).tolist():  # the kinds present
            if kind == 0:
                continue
            rows = np.flatnonzero(kinds == kind)
            uniq, inverse = np.unique(p.tun_id[rows], return_inverse=True)  # (1-D: fast)
            both = np.array([self.codes(kind, i) for i in uniq.tolist()], dtype=np.int64)
            keys[rows] = both[inverse, 0]
            texts[rows] = both[inverse, 1]
        return keys, texts

    def codes(self, kind: int, ident: int) -> tuple[int, int]:
        """(key, text) of one tunnel (kind and identity as ``pcapip.decode.tunnels`` packs
        them): 1 + the vocabulary code of its tenant, and of its ``tunnel`` text."""
        c = self._known.get((kind, ident))
        if c is None:
            text = tunnel_label(kind, ident)
            c = (1 + self.vocab.code(tenant(text)), 1 + self.vocab.code(text))
            self._known[(kind, ident)] = c
        return c

    def label(self, key: int) -> str:
        """The ``tunnel`` text of a key (empty for 0)."""
        return self.vocab.texts[key - 1] if key > 0 else ""

    def _count(self, seen: np.ndarray) -> None:
        for e in ENCAPSULATIONS:
            k = int(np.count_nonzero(seen & (1 << e.code)))
            if k:
                self.packets[e.name] += k
