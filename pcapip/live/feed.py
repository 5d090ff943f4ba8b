"""From the capture tool's stdout to batches of frames, without ever blocking the live loop.

Two threads:

* the *pump* reads the tool's stdout as bytes arrive, appends them to the
  ``-w`` file (an exact copy of the tool's output, so tshark and
  ``pcapip analyze`` read it like any capture) and passes them on through a
  private pipe;
* the *reader* runs the ordinary engine (:func:`pcapip.sources.open_capture`)
  on that pipe.  On a pipe the engine yields a batch as soon as complete
  records are buffered, and otherwise blocks in ``read``: that is why it
  lives in a thread and hands batches over through a queue, which the live
  loop polls with a timeout to keep its clock (``--duration``, screen
  refresh, interface state) running while the interface is idle.

The queue is bounded: when analysis falls behind, the reader waits, the
pipes fill, the tool buffers and finally the kernel drops packets (which the
tool counts and pcapip reports) rather than pcapip's memory growing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import select
import threading
import time
from dataclasses import dataclass
from typing import Any

from pcapip.errors import CaptureError

PIPE_SIZE = 1 << 20
READ_SIZE = 1 << 16
# Bytes are passed on to the engine at most COALESCE seconds after they arrived, in pieces of
# up to COALESCE_BYTES: each batch costs the flow stage a fixed overhead, so a busy interface
# should make a few large batches per second, not thousands of one-packet ones.
COALESCE = 0.05
COALESCE_BYTES = 512 * 1024


@dataclass(frozen=True)
class Event:
    """What the reader hands to the live loop.

    ``kind``: "batch" (``value`` is a FrameBatch), "end" (the stream ended
    cleanly), "error" (``value`` is the CaptureError; frames before it were
    delivered).
    """

    kind: str
    value: Any = None


class Feed:
    """Capture bytes on ``src_fd`` -> optional copy in ``write_path`` -> FrameBatch events."""

    def __init__(
        self,
        src_fd: int,
        *,
        label: str,
        write_path: str | None = None,
        batch_size: int = 65536,
        queue_size: int = 32,
    ) -> None:
        self.label = label
        self.write_path = write_path
        self.batch_size = batch_size
        self.events: queue.Queue[Event] = queue.Queue(maxsize=queue_size)
        self.first_bytes = threading.Event()
        self.bytes_in = 0
        self.format: str | None = None
        #: the capture reader's warnings (CaptureWarning), set when the stream ends
        self.warnings: list = []
        self.write_error: str | None = None
        self._written = 0
        self._src = src_fd
        # opened at the first byte: a capture that never starts (bad filter, no permission)
        # must not truncate a file the operator pointed -w at
        self._out: Any = None
        self._r, self._w = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._pump = threading.Thread(target=self._run_pump, name="capture-pump", daemon=True)
        self._reader = threading.Thread(target=self._run_reader, name="capture-read", daemon=True)

    def start(self) -> None:
        self._pump.start()
        self._reader.start()

    # ------------------------------------------------------------------ pump
    def _run_pump(self) -> None:
        forward = True
        pending = bytearray()
        since = 0.0  # when the oldest byte in ``pending`` arrived
        try:
            while True:
                wait = None if not pending else max(0.0, since + COALESCE - time.monotonic())
                try:
                    ready, _, _ = select.select([self._src], [], [], wait)
                except InterruptedError:
                    continue
                if ready:
                    try:
                        data = os.read(self._src, READ_SIZE)
                    except InterruptedError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    self.bytes_in += len(data)
                    self.first_bytes.set()
                    self._copy(data)
                    if not pending:
                        since = time.monotonic()
                    pending += data
                if pending and (
                    not ready
                    or len(pending) >= COALESCE_BYTES
                    or time.monotonic() - since >= COALESCE
                ):
                    if forward:
                        forward = self._forward(bytes(pending))
                    pending.clear()
            if pending and forward:
                self._forward(bytes(pending))
        finally:
            with contextlib.suppress(OSError):
                os.close(self._w)
            if self._out is not None:
                with contextlib.suppress(OSError):
                    self._out.close()

    def _copy(self, data: bytes) -> None:
        """Append to the -w file at once: it is the record of what was captured."""
        if self.write_path is None or self.write_error is not None:
            return
        try:
            if self._out is None:
                self._out = open(self.write_path, "wb")  # noqa: SIM115 (closed by the pump)
            self._out.write(data)
            self._out.flush()
        except OSError as exc:
            self.write_error = (
                f"{self.write_path}: writing failed after {self._written} bytes: "
                f"{exc.strerror or exc}"
            )
        else:
            self._written += len(data)

    def _forward(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._w, view)
            except InterruptedError:
                continue
            except OSError:  # the reader gave up (damaged stream): keep copying to -w
                return False
            view = view[n:]
        return True

    # ------------------------------------------------------------------ reader
    def _put(self, ev: Event) -> None:
        self.events.put(ev)

    def _run_reader(self) -> None:
        from pcapip.sources import open_capture

        try:
            with open_capture(f"/dev/fd/{self._r}", batch_size=self.batch_size) as src:
                self.format = src.format
                try:
                    for batch in src:
                        self._put(Event("batch", batch))
                finally:
                    self.warnings = list(src.warnings)
            self._put(Event("end"))
        except CaptureError as exc:
            exc.path = self.label
            self._put(Event("error", exc))
        except Exception as exc:  # noqa: BLE001 (reported to the live loop, never lost in a thread)
            self._put(Event("error", CaptureError(self.label, f"{type(exc).__name__}: {exc}")))
        finally:
            with contextlib.suppress(OSError):
                os.close(self._r)

    # ------------------------------------------------------------------ end
    def join(self, timeout: float | None = None) -> bool:
        """Wait for both threads; True when they have ended."""
        self._pump.join(timeout)
        self._reader.join(timeout)
        return not (self._pump.is_alive() or self._reader.is_alive())
