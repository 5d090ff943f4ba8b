"""``--trusted``: the proxies allowed to announce clients, as networks."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def parse_trusted(
    spec: str | Sequence[str] | None,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """``--trusted`` value(s): comma-separated CIDRs (or bare addresses)."""
    if spec is None:
        return None
    items = [spec] if isinstance(spec, str) else list(spec)
    nets = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                from pcapip.errors import UsageError

                raise UsageError(f"--trusted: {part!r} is not an IP address or CIDR") from None
    return nets
