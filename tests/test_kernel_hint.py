"""The prefetch hint the flow kernels give: no effect on any result in either twin, and a
prefetch instruction in the compiled one (else it would be silently lost speed)."""

from __future__ import annotations

import numpy as np
import pytest

from pcapip.sources.accel_helpers import compile_target
from pcapip.sources.kernel_hint import prefetch, prefetch_row

numba = pytest.importorskip("numba")


def _sum_with_hints(a, T):
    total = 0
    for i in range(a.shape[0]):
        prefetch(a, (i + 8) % a.shape[0])
        prefetch_row(T, i % T.shape[0])
        total += a[i] + T[i % T.shape[0], i % T.shape[1]]
    return total


def test_the_hint_changes_no_result_and_reaches_the_machine_code() -> None:
    a = np.arange(1000, dtype=np.int64) * 7
    T = np.arange(57 * 10, dtype=np.int64).reshape(10, 57)  # a row as wide as the flow table's
    before = (a.copy(), T.copy())
    pure = _sum_with_hints(a, T)
    fast = numba.njit(compile_target(_sum_with_hints))
    assert fast(a, T) == pure == sum(int(a[i] + T[i % 10, i % 57]) for i in range(1000))
    assert np.array_equal(a, before[0]) and np.array_equal(T, before[1])
    asm = "".join(fast.inspect_asm().values())
    assert "prefetch" in asm
