"""The ``pcapip`` command: a click group whose subcommands load lazily.

Start-up time matters for a CLI that operators run on small captures all day,
so each subcommand's module (and its heavy imports: numpy, numba, pandas,
textual) is imported only when that subcommand runs.
"""

from __future__ import annotations

import errno
import importlib
import io
import os
import sys
from typing import Any

import click

from pcapip import __version__
from pcapip.cli.collector import collector_off
from pcapip.errors import PcapipError

# subcommand name -> (module, attribute, one-line help shown in --help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "analyze": ("pcapip.cli.analyze", "command", "Map every flow's egress address to its real client."),
    "extract": (
        "pcapip.cli.extract",
        "command",
        "Write the packets of chosen flows to a capture (for Wireshark).",
    ),
    "resolve": (
        "pcapip.cli.resolve",
        "command",
        "Add the real client to every record of an origin's log (nginx, HAProxy, JSON, CSV).",
    ),
    "rules": (
        "pcapip.cli.rules",
        "command",
        "Check a proxy's forwarding rules file, and each rule against a capture.",
    ),
    "show": ("pcapip.cli.show", "command", "Print the field tree and hex dump of a packet or flow."),
    "live": ("pcapip.cli.live", "command", "Analyze a live interface with the same engine."),
    "tui": ("pcapip.cli.tui", "command", "Open the interactive terminal UI on a capture."),
    "wireshark-plugin": (
        "pcapip.cli.wireshark_plugin",
        "command",
        "Write (or install) the Wireshark Lua dissector for TOA options.",
    ),
}


class LazyGroup(click.Group):
    """Resolves subcommands from SUBCOMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        import importlib.util  # only --help lists the commands

        return [n for n, (mod, _, _) in SUBCOMMANDS.items() if importlib.util.find_spec(mod)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, SUBCOMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcapip")
def cli() -> None:
    """Find the real client behind an L4 proxy (TOA and PROXY protocol) in packet captures."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: errors become one clear line and exit status 2, never a traceback.

    The context is driven here rather than by ``cli.main`` because click turns a closed
    stdout (``pcapip analyze ... | head``) into exit status 1, which pcapip reserves for
    ``--fail-on``: a reader that stops early is not a finding.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # pcapip does no linear algebra, but numpy's OpenBLAS starts a thread per core when
    # numpy loads: ~50 ms of a 10-packet run. Set before any subcommand imports numpy;
    # a value the user chose wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if sys.stdout is None:  # started with standard output closed (``>&-``)
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_Closed()), encoding="utf-8")
    try:
        with collector_off():  # the subcommand's module loads (see pcapip.cli.collector)
            ctx = cli.make_context("pcapip", args)
        with ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors
        exc.show()
        sys.exit(2)
    except PcapipError as exc:  # one line per problem (a rules file can have several)
        for line in str(exc).splitlines() or [""]:
            click.echo(f"pcapip: error: {line}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except OSError as exc:  # standard output on a full disk (> /dev/full), ...
        _write_failed(exc)
    # subcommands return their exit status (0 ok, 1 findings per --fail-on, 2 input errors)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        _write_failed(exc)
    sys.exit(rv if isinstance(rv, int) else 0)


def _write_failed(exc: OSError) -> None:
    """One line and exit status 2 for an I/O error no command turned into a PcapipError."""
    _silence_stdout()
    where = f"{exc.filename}: " if exc.filename else "standard output: "
    click.echo(f"pcapip: error: {where}{exc.strerror or exc}", err=True)
    sys.exit(2)


class _Closed(io.RawIOBase):
    """Standard output when pcapip started without one: a write to it fails as a write to
    a closed descriptor does, so the command that needs it says so (a command writing to
    ``-o FILE`` runs as usual)."""

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor (it was closed when pcapip started)")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no descriptor under it (see _Closed)
        sys.stdout = open(devnull, "w")  # noqa: SIM115
