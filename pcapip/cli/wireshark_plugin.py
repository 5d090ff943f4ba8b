"""``pcapip wireshark-plugin``: the TOA dissector for Wireshark, from pcapip's own variant table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pcapip.cli.options import force_option
from pcapip.cli.output import check_output
from pcapip.errors import PcapipError, UsageError
from pcapip.report.atomic import atomic_path

_HELP = """Write the Wireshark Lua dissector for TOA options (or install it).

The plugin shows every TOA option inside Wireshark's TCP options tree under
the field names pcapip uses: toa.kind, toa.len, toa.variant, toa.port,
toa.addr (IPv4 client) and toa.addr6 (IPv6 client; Wireshark cannot give one
filter name two address types), toa.vip / toa.vip6 / toa.vip_port, toa.vpc_id,
with pcapip's expert codes (toa.unknown_length is a malformed-packet error).

By default it covers every kind pcapip decodes: 200, 201, 249, 250, 252, 253,
254 and 28. Wireshark's own views of kinds 253/254 (RFC 6994 experiments) and
28 (User Timeout) stay: options of those kinds that are not TOAs go back to
Wireshark's dissector (except an experimental-form Fast Open cookie, which
Wireshark's dissector cannot take from a plugin; it is shown as plain text). --toa-kind works as for `pcapip analyze`: N restricts
the plugin to the listed kinds, +N adds a kind (decoded as port+IPv4 at
length 8 and port+IPv6 at length 20).

Without -o or --install the plugin goes to standard output. Use it once with
`tshark -X lua_script:pcapip_toa.lua`, or --install it into Wireshark's
personal Lua plugins folder (as `tshark -G folders` reports it, else
~/.local/lib/wireshark/plugins, %APPDATA%\\Wireshark\\plugins on Windows).
Needs a Wireshark whose TCP dissector has the "tcp.option" dissector table
(checked with Wireshark 4.0).
"""


@click.command(name="wireshark-plugin", help=_HELP)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="Write the plugin to FILE ('-' for standard output).",
)
@click.option(
    "--install", is_flag=True, help="Install into Wireshark's personal Lua plugins folder."
)
@click.option(
    "--toa-kind",
    "toa_kinds",
    multiple=True,
    metavar="[+]N",
    help="TOA option kinds: N restricts to the listed kinds, +N adds a kind "
    "(repeatable, comma lists accepted).",
)
@force_option
def command(output: str | None, install: bool, toa_kinds: tuple[str, ...], force: bool) -> int:
    from pcapip.dissect import DEFAULT_REGISTRY, ToaRegistry
    from pcapip.wireshark import PLUGIN_FILENAME, install_dir, install_plugin, render_plugin

    if install and output is not None:
        raise UsageError("use either -o/--output or --install, not both")
    check_output(output, force=force)
    registry = ToaRegistry.from_spec(toa_kinds) if toa_kinds else DEFAULT_REGISTRY
    text = render_plugin(registry)
    if install:
        path = install_plugin(text, install_dir(), PLUGIN_FILENAME, force=force)
        click.echo(f"installed {path}", err=True)
        click.echo("restart Wireshark or use Analyze > Reload Lua Plugins to load it", err=True)
        return 0
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    target = Path(output)
    try:
        with atomic_path(target, force=force) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PcapipError(f"cannot write {target}: {exc.strerror or exc}") from None
    return 0
