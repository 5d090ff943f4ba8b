"""The known TOA variants and the set of option kinds treated as TOA.

There is no single TOA format: load balancers of different vendors put the
client address into different option kinds with different layouts, and some
make the kind configurable. Within one kind the option length tells the
variants apart, so the registry is keyed by (kind, length), exactly like a
receiving kernel module matches "kind and length" before it trusts the bytes.
Source of the table: the public implementations summarised in
``toa-variants.md`` (vendor names are those of the senders).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pcapip.errors import UsageError

# Layout identifiers: how the body after kind+len is laid out (see toa_option.decode_body).
L_PORT_V4 = "port+ipv4"  # client port(2) + IPv4(4)
L_PORT_V6 = "port+ipv6"  # client port(2) + IPv6(16)
L_V4_DST = "port+ipv4+pad+port+ipv4"  # client port+IPv4, 2 pad, destination port+IPv4
L_VIP_V4 = "vip:port+ipv4"  # VIP port(2) + IPv4(4): not the client
L_VPC_V4 = "port+ipv4+vpc32+vip4+vport+pad"  # Alibaba VPC SLB, 20 bytes
L_VPC_V6 = "port+ipv6+vpc24+vip6+pad"  # Alibaba vtoa IPv6, 40 bytes
L_VER_V4 = "ver+ipv4"  # Alibaba CDN: version byte 1 + IPv4, no port
L_VER_V6 = "ver+ipv6"  # Alibaba CDN: version byte (not 1) + IPv6, no port


@dataclass(frozen=True)
class ToaVariant:
    """One (kind, length) layout a load balancer is known to send."""

    kind: int
    length: int
    name: str  # stable identifier, e.g. "tencent-ipv4"
    vendors: str  # who sends it
    carries: str  # "client" | "vip"
    layout: str = L_PORT_V4


_TENCENT = (
    "Tencent Cloud (Anti-DDoS, EdgeOne L4 proxy, CLB), JD jupiter, UCloud, "
    "ip_vs_ca default (original LVS FULLNAT)"
)

KNOWN_VARIANTS: tuple[ToaVariant, ...] = (
    ToaVariant(200, 8, "tencent-ipv4", _TENCENT, "client", L_PORT_V4),
    ToaVariant(
        254, 8, "lvs-ipv4", "Alibaba LVS, Huawei ELB, iQiyi DPVS, ByteDance, UCloud", "client",
        L_PORT_V4,
    ),
    ToaVariant(
        254, 20, "dpvs-ipv6", "DPVS (IPv6 and NAT64), Huawei ELB, ByteDance", "client", L_PORT_V6
    ),
    ToaVariant(254, 16, "bytedance-ipv4-dst", "ByteDance toa", "client", L_V4_DST),
    ToaVariant(
        253, 20, "lvs-ipv6",
        "Alibaba LVS IPv6, Huawei ELB, Alibaba vtoa (Tencent CLB NAT64 documents its own option)",
        "client", L_PORT_V6,
    ),
    ToaVariant(201, 20, "jupiter-ipv6", "JD jupiter", "client", L_PORT_V6),
    ToaVariant(250, 8, "alibaba-vip", "Alibaba vtoa (VIP, sent right after a 254)", "vip", L_VIP_V4),
    ToaVariant(252, 20, "alibaba-vpc", "Alibaba VPC SLB", "client", L_VPC_V4),
    ToaVariant(249, 40, "alibaba-vpc-ipv6", "Alibaba vtoa IPv6", "client", L_VPC_V6),
    ToaVariant(28, 7, "alibaba-cdn-ipv4", "Alibaba Cloud CDN toa", "client", L_VER_V4),
    ToaVariant(28, 19, "alibaba-cdn-ipv6", "Alibaba Cloud CDN toa", "client", L_VER_V6),
)

DEFAULT_KINDS: frozenset[int] = frozenset(v.kind for v in KNOWN_VARIANTS)

# Kinds a TOA shares with a standard use. 253/254 are the RFC 6994 shared experimental options
# (kind, length, a 16- or 32-bit experiment id, data); 28 is User Timeout (RFC 5482), length 4.
EXPERIMENTAL_KINDS = (253, 254)
KIND_UTO = 28


def _generic_variants(kind: int) -> tuple[ToaVariant, ...]:
    """A user-added kind nobody documents: the two layouts most senders copy."""
    return (
        ToaVariant(kind, 8, f"kind{kind}-ipv4", "user-configured kind", "client", L_PORT_V4),
        ToaVariant(kind, 20, f"kind{kind}-ipv6", "user-configured kind", "client", L_PORT_V6),
    )


class ToaRegistry:
    """The TOA kinds to decode and the variants known for them."""

    def __init__(self, variants: Iterable[ToaVariant]) -> None:
        self.variants: tuple[ToaVariant, ...] = tuple(variants)
        self._by_key = {(v.kind, v.length): v for v in self.variants}
        self._kinds = frozenset(v.kind for v in self.variants)

    @property
    def kinds(self) -> frozenset[int]:
        return self._kinds

    def lookup(self, kind: int, length: int) -> ToaVariant | None:
        return self._by_key.get((kind, length))

    def claims(self, kind: int, length: int) -> bool:
        """Whether an option of this kind and length is read as a TOA at all.

        An exact variant always is. A 253/254 option that fits no variant and is
        long enough for an RFC 6994 experiment id (4 bytes or more) is that
        experiment (Accurate ECN, Fast Open, SMC-R, ... or an unregistered one),
        and 28 with length 4 is User Timeout; any other length of a TOA kind is a
        TOA nobody documents (kind 200 and user-added kinds have no other use).
        """
        if kind not in self._kinds:
            return False
        if (kind, length) in self._by_key:
            return True
        if kind in EXPERIMENTAL_KINDS:
            return length < 4
        return not (kind == KIND_UTO and length == 4)

    def lengths(self, kind: int) -> list[int]:
        return sorted(v.length for v in self.variants if v.kind == kind)

    @classmethod
    def for_kinds(cls, kinds: Iterable[int]) -> ToaRegistry:
        wanted = set(kinds)
        variants = [v for v in KNOWN_VARIANTS if v.kind in wanted]
        for k in sorted(wanted - DEFAULT_KINDS):
            variants.extend(_generic_variants(k))
        return cls(variants)

    @classmethod
    def from_spec(cls, specs: Sequence[str | int]) -> ToaRegistry:
        """Registry for ``--toa-kind`` values.

        Plain ``N`` restricts decoding to the listed kinds; ``+N`` adds kind N
        to the default set (or to the listed kinds when plain values are
        given too). Comma-separated lists are accepted in one value.
        """
        restrict: set[int] = set()
        add: set[int] = set()
        for spec in specs:
            for item in str(spec).split(","):
                item = item.strip()
                if not item:
                    continue
                plus = item.startswith("+")
                kind = _parse_kind(item[1:] if plus else item)
                (add if plus else restrict).add(kind)
        if not (restrict or add):  # (",": a list that names nothing is a slip, not "default")
            raise UsageError(f"--toa-kind: {','.join(map(str, specs))!r} names no kind")
        base = restrict if restrict else set(DEFAULT_KINDS)
        return cls.for_kinds(base | add)

    def __repr__(self) -> str:
        return f"ToaRegistry(kinds={sorted(self._kinds)})"


def _parse_kind(text: str) -> int:
    """A kind in decimal or 0x hex: no sign, no underscores (``int`` takes both)."""
    if not re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]+", text):
        raise UsageError(f"--toa-kind: {text!r} is not an option kind (0-255)")
    kind = int(text, 16 if text[:2] in ("0x", "0X") else 10)
    if not 2 <= kind <= 255:
        raise UsageError(
            f"--toa-kind: {kind} is not usable (kinds 0 and 1 are EOL and NOP; maximum 255)"
        )
    return kind


DEFAULT_REGISTRY = ToaRegistry(KNOWN_VARIANTS)
