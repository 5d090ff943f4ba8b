"""The capture process: start dumpcap/tcpdump, watch what it says, stop it cleanly.

The tool writes the capture to its stdout (read by :mod:`pcapip.live.feed`)
and talks to people on stderr.  Its stderr is read by a thread as it comes,
because it carries the only explanation of a failure (no such device, no
permission, a filter that does not compile, the interface vanishing) and
because tcpdump announces "listening on" there once the interface is open.

Stopping is always SIGINT first: both tools then flush the packets they hold
and close the stream properly, so the copy written with ``-w`` and the
analysis end on a complete record.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections import deque
from typing import IO

from pcapip.live.errors import (
    CaptureFailed,
    FilterError,
    InterfaceGone,
    InterfaceNotFound,
    LiveError,
    NoPermission,
)
from pcapip.live.tools import CaptureTool, capture_argv, list_interfaces

_NO_DEVICE = re.compile(
    r"no device named|no such device|doesn't exist|does not exist|no suitable device", re.I
)
_NO_PERMISSION = re.compile(
    r"permission to (capture|perform)|operation not permitted|permission denied|"
    r"not permitted to capture",
    re.I,
)
_BAD_FILTER = re.compile(
    r"invalid capture filter|can't parse filter|syntax error|unknown (port|host|protocol|network)|"
    r"illegal (token|qualifier)|not a valid capture filter",
    re.I,
)
_GONE = re.compile(
    r"no longer attached|interface went down|interface disappeared|network is down", re.I
)
_DUMPCAP_STATS = re.compile(r"Packets received/dropped on interface .*?: (\d+)/(\d+)")
_TCPDUMP_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")
_TCPDUMP_RECEIVED = re.compile(r"(\d+) packets? received by filter")


class Capturer:
    """One run of the capture tool on one interface.

    ``stdout_fd`` is the pipe the capture arrives on; the caller must keep
    reading it until end of file (the tool blocks otherwise).  ``stderr``
    is kept (last 200 lines) for diagnosis.
    """

    def __init__(
        self,
        tool: CaptureTool,
        iface: str,
        *,
        bpf: str | None = None,
        count: int | None = None,
        snaplen: int | None = None,
        buffer_mib: int | None = None,
    ) -> None:
        self.tool = tool
        self.iface = iface
        self.bpf = bpf
        self.argv = capture_argv(
            tool, iface, bpf=bpf, count=count, snaplen=snaplen, buffer_mib=buffer_mib
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.listening = threading.Event()  # tcpdump said "listening on"
        self.stopped_by_us = False
        self._lines: deque[str] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> int:
        """Start the tool; returns the fd its capture arrives on."""
        try:
            # Same process group as pcapip: Ctrl-C in the terminal reaches the tool too, and it
            # stops as cleanly as when we ask; a killed pcapip leaves no capture running behind.
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
            )
        except PermissionError as exc:
            raise NoPermission(
                f"cannot run {self.tool.path}: {exc.strerror}; ask an administrator to let you "
                "run it (Debian/Ubuntu: group wireshark) or run pcapip as root"
            ) from None
        except OSError as exc:
            raise CaptureFailed(f"cannot run {self.tool.path}: {exc.strerror or exc}") from None
        self._reader = threading.Thread(
            target=self._read_stderr, name=f"{self.tool.name}-stderr", daemon=True
        )
        self._reader.start()
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        # the tool's stderr may be closed under this thread by close() when a slow machine
        # kept it from finishing within wait()'s join: that is the end of the messages
        with contextlib.suppress(ValueError, OSError):
            self._read_lines(self.proc.stderr)

    def _read_lines(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                line = line.rstrip()
                if not line:
                    continue
                with self._lock:
                    self._lines.append(line)
                if line.startswith("listening on") or ": listening on" in line:
                    self.listening.set()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        """Ask the tool to stop (SIGINT): it flushes and ends its output stream."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.stopped_by_us = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """Last resort when the tool ignores SIGINT (escalates to SIGKILL after 2 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.stopped_by_us = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=2.0)
                return
            except subprocess.TimeoutExpired:
                continue

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status once the tool has ended (None if still running at ``timeout``)."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        return rc

    def close(self) -> None:
        """Make sure the tool is gone and its pipes are closed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.stop()
            if self.wait(3.0) is None:
                self.kill()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    # ------------------------------------------------------------------ what it said
    @property
    def stderr_lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def _said(self) -> str:
        """The tool's main complaint: its first ``tool: ...`` line, else its last line."""
        lines = self.stderr_lines
        prefix = f"{os.path.basename(self.tool.path)}: "
        for line in lines:
            if line.startswith((prefix, f"{self.tool.name}: ")):
                return line.split(": ", 1)[1]
        return lines[-1] if lines else ""

    def stats(self) -> tuple[int, int] | None:
        """(packets received, dropped) as the tool reported at exit, when it did."""
        text = "\n".join(self.stderr_lines)
        m = _DUMPCAP_STATS.search(text)
        if m:
            return int(m.group(1)), int(m.group(2))
        d = _TCPDUMP_DROPPED.search(text)
        r = _TCPDUMP_RECEIVED.search(text)
        if d and r:
            return int(r.group(1)), int(d.group(1))
        return None

    def diagnose(self, *, started: bool) -> LiveError | None:
        """Why the tool ended, as an error for the user; None when it ended normally.

        ``started``: the capture had begun (packets may have been analysed).
        """
        rc = self.returncode
        text = "\n".join(self.stderr_lines)
        said = self._said()
        tool = self.tool.name
        if _GONE.search(text):
            return InterfaceGone(
                f"capture on {self.iface!r} stopped: the interface disappeared ({tool}: {said})"
            )
        if rc in (0, None) or (self.stopped_by_us and rc in (-signal.SIGINT, 130, 2)):
            return None
        if self.stopped_by_us and rc in (-signal.SIGTERM, -signal.SIGKILL):
            return None
        if not started and _NO_DEVICE.search(text) and not _BAD_FILTER.search(said):
            names = list_interfaces(self.tool)
            known = f"; interfaces here: {', '.join(names)}" if names else ""
            return InterfaceNotFound(f"no interface named {self.iface!r} ({tool}: {said}){known}")
        if not started and _NO_PERMISSION.search(text):
            fix = (
                f"run pcapip as root, or let {tool} capture for you: "
                f"sudo setcap cap_net_raw,cap_net_admin=eip {self.tool.path}"
            )
            if tool == "dumpcap":
                fix += (
                    " (Debian/Ubuntu: sudo dpkg-reconfigure wireshark-common, then "
                    "sudo usermod -aG wireshark $USER)"
                )
            reason = next((ln.strip("() ") for ln in self.stderr_lines if ln.startswith("(")), "")
            why = f" ({reason})" if reason else ""
            return NoPermission(f"no permission to capture on {self.iface!r}{why}: {fix}")
        if not started and self.bpf and (_BAD_FILTER.search(text) or tool == "tcpdump"):
            detail = _filter_detail(self.stderr_lines) or said
            return FilterError(f"capture filter {self.bpf!r} rejected by {tool}: {detail}")
        tail = " | ".join(self.stderr_lines[-4:]) or "no message"
        return CaptureFailed(f"{tool} exited with status {rc}: {tail}")


def _filter_detail(lines: list[str]) -> str:
    """dumpcap explains a bad filter in its second paragraph: "That string isn't a valid
    capture filter (unknown port 'x')."; keep that sentence, else the tool's own line."""
    for line in lines:
        if "isn't a valid capture filter" in line or "is not a valid capture filter" in line:
            return line.strip()
    for line in lines:
        if ": " in line and _BAD_FILTER.search(line):
            return line.split(": ", 1)[1].strip()
    return ""
