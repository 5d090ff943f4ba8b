"""``pcapip tui``: open a capture in the interactive terminal UI."""

from __future__ import annotations

import click

from pcapip.cli.options import rules_option, toa_kind_option, trusted_option, vxlan_port_option
from pcapip.cli.output import check_input
from pcapip.errors import UsageError


@click.command(name="tui")
@click.argument("capture", metavar="CAPTURE")
@trusted_option
@rules_option
@toa_kind_option
@vxlan_port_option
def command(
    capture: str,
    trusted: tuple[str, ...],
    rules: str | None,
    toa_kinds: tuple[str, ...],
    vxlan_ports: tuple[int, ...],
) -> int:
    """Browse the flows of CAPTURE: which ones lost their real client, and why, down to the bytes.

    Flows show while the capture is still being read. Press ? inside for the keys
    and the filter syntax.
    """
    if capture == "-":
        raise UsageError(
            "pcapip tui needs a capture file (it reads packets again on demand), not standard input"
        )
    check_input(capture, stdin_ok=False)
    from pcapip.flows.run import registry_for
    from pcapip.flows.trusted import parse_trusted
    from pcapip.sources import open_capture

    # fail here, with pcapip's one-line error, not inside the full-screen app
    registry_for(list(toa_kinds) or None)
    parse_trusted(list(trusted) or None)
    from pcapip.rules import ruleset

    judged = ruleset(rules)
    with open_capture(capture):
        pass

    from pcapip.tui import run

    return run(
        capture,
        trusted=list(trusted) or None,
        toa_kinds=list(toa_kinds) or None,
        vxlan_ports=vxlan_ports,
        rules=judged,
    )
