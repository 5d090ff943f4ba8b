"""The tunnel a packet was found in, as the flow key holds it and the row shows it.

Two tenants may use the same inner addresses and ports (two VXLAN VNIs, two GRE
keys): they are two connections with two clients, so the flow key carries the
tunnel. Each tunnel is a small number: 1 + the code of its ``tunnel`` text
(``pcapip.decode.tunnels.tunnel_label``) in the tracker's vocabulary, 0 for none;
rows are coded in that vocabulary too, so a flow's ``tunnel`` column is that code again.

MPLS labels name no tenant: a label is chosen by the next router, hop by hop and
direction by direction, so the two directions of one connection carry different
stacks. An MPLS connection's key holds ``mpls`` alone and its column the labels of
its first packet; every other tunnel's key and column are the same.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pcapip.decode.columns import Packets
from pcapip.decode.tunnels import ENCAPSULATIONS, TUN_MPLS, tunnel_label, udp_tunnel_ports
from pcapip.flows.packed import Vocab


class TunnelCodes:
    """Each packet's tunnel key, and packets counted per encapsulation opened."""

    __slots__ = ("vocab", "ports", "_known", "_zeros", "packets")

    def __init__(self, vocab: Vocab, vxlan_ports: tuple[int, ...] = ()) -> None:
        self.vocab = vocab
        #: UDP destination port -> the tunnel the decoder opens there (``--vxlan-port`` adds)
        self.ports = udp_tunnel_ports(vxlan_ports)
        self._known: dict[tuple[int, int], int] = {}
        self._zeros = np.zeros(0, dtype=np.int64)
        self.packets: Counter[str] = Counter()  # encapsulation name -> packets inside one

    def of(self, p: Packets) -> tuple[np.ndarray, np.ndarray]:
        """int64 tunnel keys and ``tunnel`` texts of every packet of ``p`` (not to be written:
        shared between batches, and one array for both when no packet is in MPLS; not
        flagged read-only, which the compiled loop's signature would refuse)."""
        n = len(p)
        kinds = p.tun_kind
        if not kinds.any():
            if self._zeros.size < n:
                self._zeros = np.zeros(max(n, 65536), dtype=np.int64)
            return self._zeros[:n], self._zeros[:n]
        self._count(p.tun_seen)
        texts = np.zeros(n, dtype=np.int64)
        for kind in np.flatnonzero(np.bincount(kinds)).tolist():  # the kinds present
            if kind == 0:
                continue
            rows = np.flatnonzero(kinds == kind)
            uniq, inverse = np.unique(p.tun_id[rows], return_inverse=True)  # (1-D: fast)
            codes = np.array([self.code(kind, i) for i in uniq.tolist()], dtype=np.int64)
            texts[rows] = codes[inverse]
        mpls = kinds == TUN_MPLS
        if not mpls.any():
            return texts, texts
        keys = texts.copy()
        keys[mpls] = self.code(TUN_MPLS, 0)
        return keys, texts

    def code(self, kind: int, ident: int) -> int:
        """The key of one tunnel (kind and identity as ``pcapip.decode.tunnels`` packs them)."""
        c = self._known.get((kind, ident))
        if c is None:
            c = self._known[(kind, ident)] = 1 + self.vocab.code(tunnel_label(kind, ident))
        return c

    def label(self, key: int) -> str:
        """The ``tunnel`` text of a key (empty for 0)."""
        return self.vocab.texts[key - 1] if key > 0 else ""

    def _count(self, seen: np.ndarray) -> None:
        for e in ENCAPSULATIONS:
            k = int(np.count_nonzero(seen & (1 << e.code)))
            if k:
                self.packets[e.name] += k
