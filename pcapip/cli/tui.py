"""``pcapip tui``: open a capture in the interactive terminal UI."""

from __future__ import annotations

import os

import click

from pcapip.errors import UsageError


@click.command(name="tui")
@click.argument("capture", metavar="CAPTURE")
@click.option(
    "--trusted",
    "trusted",
    multiple=True,
    metavar="CIDRS",
    help="Comma-separated CIDRs of the proxies allowed to announce clients.",
)
@click.option(
    "--toa-kind",
    "toa_kinds",
    multiple=True,
    metavar="N",
    help="TOA option kind: N restricts decoding to the listed kinds, +N adds one. Repeatable.",
)
def command(capture: str, trusted: tuple[str, ...], toa_kinds: tuple[str, ...]) -> int:
    """Browse the flows of CAPTURE: which ones lost their real client, and why, down to the bytes.

    Flows show while the capture is still being read. Press ? inside for the keys
    and the filter syntax.
    """
    if capture == "-":
        raise UsageError(
            "pcapip tui needs a capture file (it reads packets again on demand), not standard input"
        )
    if not os.path.exists(capture):
        raise UsageError(f"{capture}: no such file")
    if os.path.isdir(capture):
        raise UsageError(f"{capture}: is a directory")
    from pcapip.flows.run import registry_for
    from pcapip.flows.tracker import parse_trusted
    from pcapip.sources import open_capture

    # fail here, with pcapip's one-line error, not inside the full-screen app
    registry_for(list(toa_kinds) or None)
    parse_trusted(list(trusted) or None)
    with open_capture(capture):
        pass

    from tui import run

    return run(capture, trusted=list(trusted) or None, toa_kinds=list(toa_kinds) or None)
