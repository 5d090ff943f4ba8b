"""The report's one-line notes about a capture as a whole: what the flow stage counted
(packets it could not use, tunnels it opened, attempts that never completed, proxies
that announced clients), said in words. The terminal report shows them; ``pcapip
analyze`` also says the spoofing note on stderr when the report itself does not.
"""

from __future__ import annotations

from pcapip.flows.attempts import FLOOD_MIN, FloodSummary


def undecoded_line(stats: dict[str, int], reasons: dict[str, int]) -> str | None:
    """The report's line about packets that gave no flow, e.g. "12 of 822 packets not
    TCP/UDP: ARP 8, ICMPv6 4" (None when every packet was decoded)."""
    n = stats.get("packets_undecoded", 0)
    if not n:
        return None
    total = stats.get("packets", 0)
    if len(reasons) == 1:
        kinds = next(iter(reasons))
    else:
        kinds = ", ".join(f"{label} {c}" for label, c in list(reasons.items())[:8])
    more = ", …" if len(reasons) > 8 else ""
    what = "not decoded" if stats.get("packets_blind", 0) else "not TCP/UDP"
    return f"{n} of {total} packets {what}: {kinds}{more}"


def tunnels_line(stats: dict[str, int]) -> str:
    """Packets per encapsulation opened, e.g. ``Tunnels opened: vxlan 1200 packets, gre 40``."""
    from pcapip.decode.tunnels import ENCAPSULATIONS

    seen = [(e.name, stats.get(f"packets_in_{e.name}", 0)) for e in ENCAPSULATIONS]
    parts = [f"{name} {n}" for name, n in seen if n]
    return "Tunnels opened (packets inside): " + ", ".join(parts) if parts else ""


def flood_line(f: FloodSummary | None, shown: int = 3) -> str | None:
    """The report's line when many connection attempts went unanswered (a SYN flood?)."""
    if f is None or f.attempts < FLOOD_MIN:
        return None
    parts = ", ".join(f"{n} {s}" for s, n in f.by_status.items())
    top = ", ".join(f"{ip} ({n})" for ip, n in f.top[:shown])
    to = f" to {f.targets[0][0]}" if f.targets and f.targets[0][1] * 2 > f.attempts else ""
    return (
        f"SYN flood? {f.attempts} connection attempts never completed{to} ({parts}), from "
        f"{f.sources} source addresses, most from {top}"
    )


def spoofing_line(found: dict[str, int], shown: int = 3) -> str | None:
    """The report's note when ``--trusted`` was not given and clients were announced."""
    if not found:
        return None
    ips = list(found)
    head = ", ".join(ips[:shown])
    more = f" ({len(ips) - shown} more)" if len(ips) > shown else ""
    example = ",".join(ips[:shown]) + (",…" if len(ips) > shown else "")
    return (
        f"Spoofing not checked (no --trusted): clients were announced by {head}{more} "
        f"— e.g. --trusted {example}"
    )
