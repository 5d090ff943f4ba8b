"""Finding the program that opens the interface: Wireshark's dumpcap, else tcpdump.

pcapip never opens a capture socket itself: that needs root or CAP_NET_RAW
for the whole Python process.  dumpcap is built to be the one privileged
piece (file capabilities, or group ``wireshark``), and writes pcapng to a
pipe that the ordinary analysis engine reads.  tcpdump does the same job with
pcap when Wireshark is not installed.

dumpcap is located the way pyshark locates Wireshark's programs (its
``config.ini`` first, then ``PATH``), so one configuration serves both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pcapip.live.errors import CaptureFailed, ToolMissing

ToolName = Literal["dumpcap", "tcpdump"]
TOOL_CHOICES: tuple[str, ...] = ("auto", "dumpcap", "tcpdump")

INSTALL_HINT = (
    "install Wireshark's dumpcap (Debian/Ubuntu: apt install wireshark-common; "
    "Fedora/RHEL: dnf install wireshark-cli; Arch: pacman -S wireshark-cli; "
    "macOS: brew install wireshark) or, as a fallback, tcpdump"
)


@dataclass(frozen=True)
class CaptureTool:
    """A capture program and the file format it writes to the pipe."""

    name: ToolName
    path: str

    @property
    def format(self) -> str:
        return "pcapng" if self.name == "dumpcap" else "pcap"


def _executable(path: str | None) -> bool:
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)  # type: ignore[arg-type]


def _find_dumpcap() -> tuple[str | None, str | None]:
    """(usable path, path that exists but is not executable by this user)."""
    candidates: list[str] = []
    try:
        from pyshark.tshark.tshark import get_process_path

        candidates.append(get_process_path(process_name="dumpcap"))
    except Exception:  # noqa: BLE001
        # not found, or pyshark itself failed (e.g. it stats ./config.ini in a directory this
        # user may not read): PATH below still finds dumpcap, and capture must not depend on it
        pass
    which = shutil.which("dumpcap")
    if which:
        candidates.append(which)
    blocked = None
    for c in candidates:
        if _executable(c):
            return c, None
        if os.path.exists(c):
            blocked = c
    return None, blocked


def find_tool(prefer: str = "auto") -> tuple[CaptureTool, list[str]]:
    """The capture tool to use and notes for the user (e.g. "using tcpdump").

    ``prefer``: "auto" (dumpcap, else tcpdump), "dumpcap" or "tcpdump".
    Raises ToolMissing saying what to install.
    """
    if prefer not in TOOL_CHOICES:
        raise ValueError(f"tool must be one of {', '.join(TOOL_CHOICES)}, not {prefer!r}")
    notes: list[str] = []
    dumpcap, blocked = (None, None) if prefer == "tcpdump" else _find_dumpcap()
    if dumpcap:
        return CaptureTool("dumpcap", dumpcap), notes
    blocked_note = (
        f"{blocked} exists but you may not run it: add yourself to its group "
        "(Debian/Ubuntu: sudo dpkg-reconfigure wireshark-common, then "
        "sudo usermod -aG wireshark $USER and log in again)"
        if blocked
        else None
    )
    if prefer == "dumpcap":
        raise ToolMissing(blocked_note or f"dumpcap not found: {INSTALL_HINT}")
    tcpdump = shutil.which("tcpdump")
    if _executable(tcpdump):
        if prefer == "auto":
            notes.append(blocked_note or "dumpcap not found, capturing with tcpdump (writes pcap)")
        return CaptureTool("tcpdump", tcpdump), notes
    if prefer == "tcpdump":
        raise ToolMissing("tcpdump not found: install tcpdump, or Wireshark's dumpcap")
    if blocked_note:
        raise ToolMissing(f"{blocked_note}; tcpdump (the fallback) is not installed either")
    raise ToolMissing(f"no capture tool found: {INSTALL_HINT}")


_DUMPCAP_D = re.compile(r"^\s*\d+\.\s+(\S+)")


def list_interfaces(tool: CaptureTool, timeout: float = 10.0) -> list[str]:
    """Interface names the tool can capture on (``-D``), in its order.

    Falls back to the kernel's list (/sys/class/net) when the tool cannot
    list (e.g. no permission); empty when nothing is known.
    """
    try:
        out = subprocess.run(
            [tool.path, "-D"], capture_output=True, text=True, timeout=timeout, check=False
        )
        names = [m.group(1) for m in map(_DUMPCAP_D.match, out.stdout.splitlines()) if m]
    except (OSError, subprocess.TimeoutExpired):
        names = []
    if names:
        return names
    try:
        return sorted(p.name for p in Path("/sys/class/net").iterdir())
    except OSError:
        return []


def capture_argv(
    tool: CaptureTool,
    iface: str,
    *,
    bpf: str | None = None,
    count: int | None = None,
    snaplen: int | None = None,
    buffer_mib: int | None = None,
) -> list[str]:
    """Command line that captures on ``iface`` and writes the capture to stdout.

    tcpdump gets ``-U --immediate-mode`` so every packet reaches the pipe at
    once; dumpcap has no such switch and hands packets over at libpcap's
    read timeout (a few hundred milliseconds at most), which is prompt
    enough for a rolling view.  ``buffer_mib`` sizes the kernel's capture buffer, which
    absorbs bursts while analysis catches up.
    """
    if tool.name == "dumpcap":
        argv = [tool.path, "-i", iface, "-w", "-", "-n", "-q"]
        if count:
            argv += ["-c", str(count)]
        if snaplen:
            argv += ["-s", str(snaplen)]
        if buffer_mib:
            argv += ["-B", str(buffer_mib)]
        if bpf:
            argv += ["-f", bpf]
        return argv
    if tool.name == "tcpdump":
        # -n: no DNS lookups on the capture path.  Run as root, tcpdump drops to its own user
        # after opening the interface; stdout is already open, so that costs nothing here.
        argv = [tool.path, "-i", iface, "-w", "-", "-U", "--immediate-mode", "-n"]
        if count:
            argv += ["-c", str(count)]
        if snaplen:
            argv += ["-s", str(snaplen)]
        if buffer_mib:
            argv += ["-B", str(buffer_mib * 1024)]  # tcpdump counts KiB
        if bpf:
            argv.append(bpf)
        return argv
    raise CaptureFailed(f"unknown capture tool {tool.name!r}")
