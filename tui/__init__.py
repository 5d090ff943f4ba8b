"""pcapip's terminal UI: find the flows whose real client is missing or wrong, down to the bytes.

``pcapip tui CAPTURE`` and ``pcapip live -i IFACE --tui`` open it. The UI
uses pcapip's public pieces only (the flow stage, the dissectors, the
capture reader), so everything it shows is what ``pcapip analyze`` and
``pcapip show`` would print.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def require_terminal(what: str) -> None:
    """A full-screen UI on a pipe would hang its caller: refuse with one clear line."""
    import sys

    from pcapip.errors import UsageError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            f"{what} needs an interactive terminal (stdin and stdout are not both a "
            "terminal); use pcapip analyze for files, pcapip live --format csv|json "
            "for pipes"
        )


def run(
    capture: str,
    *,
    trusted: str | Sequence[str] | None = None,
    toa_kinds: Sequence[str] | None = None,
    vxlan_ports: Sequence[int] = (),
    rules: Any = None,
) -> int:
    """Run the app on a capture file until the user quits; returns the exit status.
    ``rules``: a :class:`pcapip.rules.RuleSet` (``--rules``) every flow is judged against."""
    from pcapip.tui.app import PcapipApp

    require_terminal("pcapip tui")
    app = PcapipApp(
        capture,
        trusted=list(trusted) if isinstance(trusted, (list, tuple)) else trusted,
        toa_kinds=list(toa_kinds) if toa_kinds else None,
        vxlan_ports=tuple(vxlan_ports),
        rules=rules,
    )
    rv = app.run()
    return int(rv or 0)
