"""What the compiled flow loop tells Python: its counters and its ``out`` matrix.

``ct`` (int64, N_COUNTERS slots) holds counts shared with the Python side
(``pcapip.flows.tcptable``); ``out`` has one row per list the loop fills
(OUT_*), each from column 0 on and counted in a ``ct`` slot.
"""

from __future__ import annotations

from pcapip.sources.accel import kernel_helper

# counters[] slots shared with the Python side
CT_FREE_TOP = 0  # entries left on the free-row stack
CT_DEFER = 1  # packets handed over in this call
CT_ENDED = 2  # rows ended in this call (port reuse)
CT_SETTLED = 3  # rows whose header question this call settled
CT_EVENTS = 4  # rows closed, fully closed or become attempts in this call: eviction candidates
CT_SERIAL = 5  # last flow serial number given out
CT_CLOSES = 6  # flows closed so far (close order)
CT_OPEN = 7  # open rows
CT_HEADERS = 8  # first segments left to Python to parse (the packet itself is applied)
CT_ATTEMPT_NS = 9  # (set by the caller) the attempt timeout: a later packet starts a new flow
# (set by the caller; a test switch) non-zero: hand over every packet the loop would apply
# itself, once its flow is found or created, so the Python rules apply them all
CT_EVERY_PACKET = 10
N_COUNTERS = 11

# rows of the ``out`` matrix, each filled from column 0 on and counted in ``ct``
OUT_K = 0  # packets handed over (their index in todo's numbering), counted in CT_DEFER
OUT_SLOT = 1  # their rows
OUT_FIRST = 2  # 1: the first of its flow in this call (for the Python rules), 0: a later one
OUT_ENDED = 3  # rows ended (CT_ENDED)
OUT_SETTLED = 4  # rows whose header question was settled (CT_SETTLED)
OUT_EVENTS = 5  # rows to schedule for eviction (CT_EVENTS)
OUT_HK = 6  # first segments whose header Python reads (CT_HEADERS)
OUT_HSLOT = 7  # their rows
N_OUT = 8


@kernel_helper
def push(out, ct, c, r, v):
    """Append ``v`` to row ``r`` of the out matrix, whose length is ``ct[c]``."""
    n = ct[c]
    out[r, n] = v
    ct[c] = n + 1


@kernel_helper
def hand_over(out, ct, k, s, first):
    """List packet ``k`` of flow row ``s`` for Python (``first``: 1 if it is the flow's first
    packet handed over in this call)."""
    n = ct[CT_DEFER]
    out[OUT_K, n] = k
    out[OUT_SLOT, n] = s
    out[OUT_FIRST, n] = first
    ct[CT_DEFER] = n + 1


@kernel_helper
def ask_header(out, ct, k, s):
    """List packet ``k``, the first segment of flow row ``s``, for Python to read its header."""
    n = ct[CT_HEADERS]
    out[OUT_HK, n] = k
    out[OUT_HSLOT, n] = s
    ct[CT_HEADERS] = n + 1
