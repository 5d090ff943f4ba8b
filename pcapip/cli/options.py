"""Options that several subcommands share, defined once so their spelling and help agree."""

from __future__ import annotations

import click

trusted_option = click.option(
    "--trusted",
    "trusted",
    multiple=True,
    metavar="CIDRS",
    help="Comma-separated CIDRs of the proxies allowed to announce clients.",
)

toa_kind_option = click.option(
    "--toa-kind",
    "toa_kinds",
    multiple=True,
    metavar="N",
    help="TOA option kind: N restricts decoding to the listed kinds, +N adds one. Repeatable.",
)

fail_on_option = click.option(
    "--fail-on",
    type=click.Choice(["info", "warning", "error"]),
    default=None,
    help="Exit 1 when a finding of this severity or worse exists.",
)
