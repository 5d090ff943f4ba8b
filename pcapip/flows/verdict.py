"""A flow's verdict: which mechanism carried its client (``method``) and whether it
worked (``status``), decided once for one flow or a column of flows.

``pcapip.flows.rows`` asks it for a flow held as an object (scalars),
``pcapip.flows.columnar`` for the flows of the compiled table (arrays): the rules
are these lines, whichever way a flow was tracked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pcapip.flows.columns import METHODS, STATUSES

NO_HEADER = -1  # ``header`` when the flow sent no PROXY header
_M = {m: k for k, m in enumerate(METHODS)}
_S = {s: k for k, s in enumerate(STATUSES)}


def header_status(state: str) -> int:
    """The status a PROXY header's reassembly state gives (an index in STATUSES)."""
    return _S[state] if state in ("ok", "malformed") else _S["incomplete"]


def verdict(
    header: Any,
    version: Any,
    toa: Any,
    toa_bad: Any,
    cut: Any,
    start_seen: Any,
    attempt: Any,
    toa_cut: Any = False,
) -> tuple[Any, Any]:
    """(method, status) as indices in METHODS and STATUSES, for scalars or arrays.

    ``header``: the status a PROXY header gives (:func:`header_status`), NO_HEADER
    without one; ``version`` its version (0 when it never said). ``toa``: a TOA option
    carried a client; ``toa_bad``: only a malformed one came; ``toa_cut``: only one the
    snap length cut came (the capture lost the client: incomplete). ``cut``: the capture
    lost the stream's first bytes (a gap, or the snap length cut the first payload).
    ``attempt``: ``attempts.attempt_status``'s 0 or 1 + index in ATTEMPT_STATUSES.

    A PROXY header decides when there is one; else a TOA option; else what the capture
    shows: a cut start leaves the question incomplete, a flow seen from its middle is
    unknown, a connection attempt says what became of it, and the rest is absent.
    """
    has_hdr = np.asarray(header) != NO_HEADER
    by_toa = np.asarray(toa) | np.asarray(toa_bad) | np.asarray(toa_cut)
    mid = ~np.asarray(cut) & ~np.asarray(start_seen)
    method = np.where(
        has_hdr,
        np.where(np.asarray(version) == 2, _M["ppv2"], _M["ppv1"]),
        np.where(by_toa, _M["toa"], np.where(mid, _M["unknown"], _M["none"])),
    )
    rest = np.where(
        cut,
        _S["incomplete"],
        np.where(
            mid,
            _S["mid-stream"],
            np.where(np.asarray(attempt) > 0, _S["mid-stream"] + np.asarray(attempt), _S["absent"]),
        ),
    )
    status = np.where(
        has_hdr,
        header,
        np.where(
            toa,
            _S["ok"],
            np.where(toa_bad, _S["malformed"], np.where(toa_cut, _S["incomplete"], rest)),
        ),
    )
    return method, status
