"""What the live loop watches besides the packets: the interface's state and the signals.

Admin-down does not make libpcap stop, and SIGINT/SIGTERM/SIGHUP must reach the one
thread that does the analysis as flags it reads between batches, never as exceptions
in the middle of a batch (but a second SIGINT, which interrupts at once).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

WATCH_INTERVAL = 0.5  # seconds between reads of the interface's state
IFF_UP = 0x1


class InterfaceWatch:
    """Notices the interface going down or coming back (Linux sysfs), for a plain note.

    Admin-down (``ip link set X down``) does not make libpcap stop; without
    this the operator would only see traffic stop.  Disabled when the
    interface is not a kernel interface (``any``, a number, an extcap).
    """

    def __init__(self, iface: str) -> None:
        self.base = Path("/sys/class/net") / iface
        self.iface = iface
        self.enabled = "/" not in iface and self.base.is_dir()
        self._last = self._state() if self.enabled else None
        self._next = 0.0

    def _state(self) -> str:
        try:
            flags = int((self.base / "flags").read_text().strip(), 16)
            oper = (self.base / "operstate").read_text().strip()
        except (OSError, ValueError):
            return "gone"
        if not flags & IFF_UP:
            return "admin-down"
        return "down" if oper in ("down", "lowerlayerdown", "notpresent") else "up"

    def poll(self) -> str | None:
        """A note when the state changed since the last poll, else None."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + WATCH_INTERVAL
        st = self._state()
        if st == self._last:
            return None
        prev, self._last = self._last, st
        stamp = time.strftime("%H:%M:%S")
        if st == "up":
            return f"{stamp} interface {self.iface} is up again (was {prev})"
        if st == "gone":
            return f"{stamp} interface {self.iface} disappeared"
        what = "was set down" if st == "admin-down" else "lost its link"
        return (
            f"{stamp} interface {self.iface} {what}; still capturing, packets resume when it is up"
        )


class Signals:
    """SIGINT/SIGTERM ask the loop to stop (the summary is still printed); a second
    SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.hangup = False  # SIGHUP: reopen the flow log (logrotate)
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.hangup = True
            return
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = "interrupted"

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
