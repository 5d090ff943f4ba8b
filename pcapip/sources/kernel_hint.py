"""``prefetch``: a kernel tells the processor which memory it will read soon.

A SYN flood's flow loop spends most of its time waiting for one load per packet: the
hash index entry of a flow key it has never seen, somewhere in tens of MB. Asking for
the entry of the packet a few places ahead lets those waits overlap. A hint changes no
result: the pure path's twin does nothing, the compiled one is LLVM's ``prefetch``.
"""

from __future__ import annotations

from typing import Any

from .accel_helpers import compiled_as, kernel_helper

AHEAD = 8  # packets (or rows) between the hint and the load: enough to hide a memory wait


def _compiled() -> Any:
    """The compiled twin: ``llvm.prefetch`` (for a write, kept in every cache level) of
    the address of ``a[i]``."""
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _hint(typingctx: Any, a: Any, i: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            aty = sig.args[0]
            arr = context.make_array(aty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aty, arr, [args[1]], wraparound=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0i8",
            )
            rw, locality, data = ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)
            builder.call(fn, [builder.bitcast(ptr, i8p), rw, locality, data])
            return context.get_dummy_value()

        return types.void(a, i), codegen

    @njit(inline="always")
    def prefetch(a: Any, i: Any) -> None:
        _hint(a, i)

    return prefetch


@compiled_as(_compiled)
def prefetch(a: Any, i: int) -> None:
    """Start loading the cache line of ``a[i]`` (``i`` within ``a``; a 1-D array)."""


@kernel_helper
def prefetch_row(T, r):
    """Start loading every cache line of row ``r`` of the 2-D table ``T`` (a line holds 8
    int64 fields; a row need not start on one)."""
    row = T[r]
    for f in range(0, row.shape[0], 8):
        prefetch(row, f)
    prefetch(row, row.shape[0] - 1)
