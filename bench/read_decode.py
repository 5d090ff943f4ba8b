"""Read and decode a whole capture with pcapip; print one JSON line of figures.

The loop touches every decoded batch (a SYN count over the TCP flag column)
so the work cannot be optimised away. Reported phases: ``startup`` (Python
imports of numpy and pcapip), ``jit`` (importing numba and loading the cached
kernels, which pcapip does by itself for any capture big enough to use them;
done up front here only to report it apart), ``seconds`` (reading and
decoding). The parent measures the whole process separately.
"""

from __future__ import annotations

import json
import os
import sys
import time

t_start = time.perf_counter()

import numpy as np  # noqa: E402

from pcapip.decode import decode, warm_compiled  # noqa: E402
from pcapip.sources import open_capture  # noqa: E402


def main() -> None:
    path = sys.argv[1]
    backend = sys.argv[2] if len(sys.argv) > 2 else None
    tj = time.perf_counter()
    jit = 0.0
    if backend != "pure" and os.path.getsize(path) >= 64 * 1024 * 1024:
        jit = warm_compiled()
    t0 = time.perf_counter()
    packets = syns = batches = 0
    with open_capture(path, backend=backend) as src:
        for batch in src:
            cols = decode(batch, backend=backend)
            packets += len(cols)
            syns += int(np.count_nonzero(cols.tcp_flags & 2))
            batches += 1
        used = sorted(src.backend_used)
    t1 = time.perf_counter()
    print(
        json.dumps(
            {
                "packets": packets,
                "syn": syns,
                "batches": batches,
                "seconds": t1 - t0,
                "startup": tj - t_start,
                "jit": jit,
                "backend": used,
            }
        )
    )


if __name__ == "__main__":
    main()
