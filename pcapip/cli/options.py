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

#: the default is pcapip.flows.attempts.ATTEMPT_TIMEOUT (a test holds the help to it; importing
#: that module here would load numpy for every ``pcapip --help``)
attempt_timeout_option = click.option(
    "--attempt-timeout",
    "attempt_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Capture-time seconds of quiet after which a connection attempt that never completed "
    "its handshake (a SYN unanswered, a SYN-ACK unacknowledged) ends as a row; it keeps a "
    "SYN flood's memory to the attempts of that window. Default: 5.",
)

vxlan_port_option = click.option(
    "--vxlan-port",
    "vxlan_ports",
    multiple=True,
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="UDP port that carries VXLAN besides 4789 (Linux's default is 8472). Repeatable.",
)

fail_on_option = click.option(
    "--fail-on",
    type=click.Choice(["info", "warning", "error"]),
    default=None,
    help="Exit 1 when a finding of this severity or worse exists.",
)

force_option = click.option(
    "--force",
    is_flag=True,
    help="Write through a symbolic link found where an output file goes (refused by "
    "default: a link planted there could make pcapip overwrite another file).",
)

rules_option = click.option(
    "--rules",
    "rules",
    metavar="FILE",
    default=None,
    help="The proxy's forwarding rules (EdgeOne batch format: 'tcp:443 198.51.100.20 8443 on "
    "ppv2' per line): each flow gets its rule (column rule), rule.mismatch where the wire "
    "disagrees, rule.unmatched where no rule covers it. A bad line is an input error.",
)
