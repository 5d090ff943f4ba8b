"""``pcapip live --tui``: the terminal UI fed by a running live capture.

The capture runs as its own ``pcapip live --format csv`` process: it owns
the capture tool and its privileges, writes the raw packets to ``-w`` (a
temporary file when none was asked for), and prints one CSV line per flow
as soon as the flow's client is known. The UI reads those lines in a worker
thread and shows them in batches, so a busy interface never blocks the
keyboard. Stopping (``x``, ``q``, ``--duration``, ``--count``) sends the
capture process SIGINT, exactly like Ctrl-C in a terminal; when it has
ended, the recording is analysed in full and the table switches to the
final rows, with packets, timelines and hex dumps available.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd
from textual.message import Message

from pcapip.rules import ruleset
from pcapip.tui.app import PcapipApp
from pcapip.tui.main_screen import MainScreen
from pcapip.tui.rows import normalize

#: how often (seconds) rolling rows are handed to the UI
BATCH_INTERVAL = 0.25


def _die_with_parent() -> None:
    """In the capture process: SIGTERM when the UI process dies, however it dies (pcapip live
    stops its capture tool and exits on SIGTERM), so no capture is left running unattended."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def live_argv(opts: Any, write: str) -> list[str]:
    """The ``pcapip live`` command line that captures for the UI."""
    argv = [
        sys.executable,
        "-m",
        "pcapip",
        "live",
        "-i",
        opts.iface,
        "--format",
        "csv",
        "-o",
        os.devnull,
        "-w",
        write,
        "--tool",
        opts.tool,
        "--max-flows",
        str(opts.max_flows),
    ]
    if opts.bpf:
        argv += ["-f", opts.bpf]
    if opts.duration is not None:
        argv += ["--duration", str(opts.duration)]
    if opts.count is not None:
        argv += ["-c", str(opts.count)]
    for t in opts.trusted or ():
        argv += ["--trusted", t]
    if getattr(opts, "rules", None):
        argv += ["--rules", opts.rules]
    for k in opts.toa_kinds or ():
        argv += ["--toa-kind", str(k)]
    for port in getattr(opts, "vxlan_ports", ()):
        argv += ["--vxlan-port", str(port)]
    if opts.snaplen is not None:
        argv += ["-s", str(opts.snaplen)]
    return argv


def records_frame(records: list[dict[str, str]]) -> pd.DataFrame:
    """Rolling CSV lines (analyze's columns and flow numbers) as a model frame."""
    df = pd.DataFrame(records)
    start = pd.to_datetime(df["start"], utc=True, format="ISO8601")
    data = {c: df[c].where(df[c] != "", None) for c in df.columns}
    data["start"] = start.dt.tz_localize(None).astype("datetime64[ns]").astype("int64")
    data["end"] = data["start"]
    data["packets"] = -1  # not known until the flow ends: shown empty
    data["bytes"] = -1
    return normalize(pd.DataFrame(data))


@dataclass
class LiveNote(Message):
    """A line the capture process wrote on its standard error."""

    text: str


@dataclass
class LiveEnded(Message):
    """The capture process ended with exit status ``rc``."""

    rc: int


class LiveApp(PcapipApp):
    """The flows UI over a running ``pcapip live`` process."""

    def __init__(self, opts: Any) -> None:
        super().__init__(
            None,
            trusted=opts.trusted,
            toa_kinds=opts.toa_kinds,
            vxlan_ports=tuple(getattr(opts, "vxlan_ports", ())),
            title=f"live: {opts.iface}",
            rules=ruleset(getattr(opts, "rules", None)),
        )
        self.opts = opts
        self.temp: str | None = None
        if opts.write:
            self.record_path = opts.write
        else:
            fd, self.temp = tempfile.mkstemp(prefix="pcapip-live-", suffix=".pcapng")
            os.close(fd)
            self.record_path = self.temp
        self.export_stem = f"live-{opts.iface}" if self.temp else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.rc: int | None = None
        self.stderr: list[str] = []
        self.main.live_note = f"starting capture on {opts.iface}"
        self._ending = False
        self._lock = threading.Lock()
        self._incoming: list[dict[str, str]] = []

    def on_main_screen_ready(self, msg: MainScreen.Ready) -> None:
        super().on_main_screen_ready(msg)
        # terminal closed (SIGHUP) or asked to stop (SIGTERM): leave the app normally, so the
        # capture process is stopped and the temporary recording removed (run_live's cleanup)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signalled, sig)
        self.proc = subprocess.Popen(
            live_argv(self.opts, self.record_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        # plain daemon threads, not app workers: they block in read() until the capture process
        # ends, and leaving the app must never wait for that
        for target in (self._read_stdout, self._read_stderr):
            threading.Thread(target=target, args=(self.proc,), daemon=True).start()
        self.set_interval(BATCH_INTERVAL, self._drain)

    # ------------------------------------------------------------ the capture process
    def _read_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        """Lines as they are flushed; the UI takes them in batches (see _drain)."""
        assert proc.stdout is not None
        header: list[str] | None = None
        for raw in iter(proc.stdout.readline, b""):
            row = next(csv.reader([raw.decode("utf-8", "replace")]), None)
            if not row:
                continue
            if header is None:
                header = row
                continue
            if len(row) == len(header):
                with self._lock:
                    self._incoming.append(dict(zip(header, row, strict=True)))
        rc = proc.wait()
        self.post_message(LiveEnded(rc))

    def _drain(self) -> None:
        with self._lock:
            batch, self._incoming = self._incoming, []
        if batch and not self.loaded:
            self.main.add_rows(records_frame(batch))

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            if text:
                self.post_message(LiveNote(text))

    def on_live_note(self, msg: LiveNote) -> None:
        text = msg.text.removeprefix("pcapip: ")
        self.stderr.append(text)
        if "capturing on" in text:
            note = text.split(";")[0]
            if self.temp is not None:
                note = note.split(", copy in ")[0]
            self.main.live_note = note
        elif text.startswith("error") or "error:" in text:
            self.notify(text, title="Capture", severity="error", timeout=10)
            self.main.live_note = text
        else:
            self.notify(text, title="Capture", timeout=5)

    def on_live_ended(self, msg: LiveEnded) -> None:
        self.rc = msg.rc
        self._drain()
        if self._ending:
            self.exit(self.rc)
            return
        size = os.path.getsize(self.record_path) if os.path.exists(self.record_path) else 0
        if size == 0:
            self.main.live_note = f"capture ended (exit {msg.rc}) without packets"
            return
        note = None if msg.rc == 0 else f"capture ended with exit status {msg.rc}"
        self.main.live_note = note
        self.capture = self.record_path
        self.start_loader(self.record_path, provisional=False)
        self.main.refresh_status()

    # ------------------------------------------------------------ keys
    def action_stop_live(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.main.live_note = "stopping the capture…"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)

    async def action_quit(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._ending = True
            self.action_stop_live()
            self.set_timer(8.0, self._force_exit)
            return
        self.exit(self.rc or 0)

    def _signalled(self, signum: int) -> None:
        self._kill_capture()
        self.exit(self.rc if self.rc is not None else 128 + signum)

    def _force_exit(self) -> None:
        self._kill_capture()
        self.exit(self.rc if self.rc is not None else 2)

    def _kill_capture(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)

    def cleanup(self) -> None:
        """Stop the capture process and drop the temporary recording."""
        p = self.proc
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        if p is not None:
            for f in (p.stdout, p.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)


def run_live(opts: Any) -> int:
    """``pcapip live --tui`` (opts: pcapip.live.session.LiveOptions); returns the exit status."""
    from pcapip.tui import require_terminal

    require_terminal("pcapip live --tui")
    if not opts.iface:
        from pcapip.errors import UsageError

        raise UsageError("pcapip live --tui needs an interface: -i IFACE")
    app = LiveApp(opts)
    try:
        rv = app.run()
    finally:
        app.cleanup()
    if rv is None:
        rv = app.rc or 0
    if app.rc not in (None, 0):
        for line in app.stderr[-3:]:
            print(f"pcapip: {line}", file=sys.stderr)
    return int(rv)
