"""The compiled kernels read like the rest of the code: short functions, short argument lists.

Each kernel is a loop over a batch that calls ``@kernel_helper`` functions named for their
job (numba inlines them); packet columns travel as one tuple (a struct of arrays) and the
flow loop's outputs as one matrix.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import pytest

from pcapip.decode import kernel as decode_kernel
from pcapip.flows import kernel as K
from pcapip.sources import accel, kernel_bytes
from pcapip.sources.accel_helpers import called_helpers

MAX_LINES = 80  # lines of code in one function, docstring not counted
MAX_KERNEL_ARGS = 10
MAX_HELPER_ARGS = 10
MAX_FILE_LINES = 500
SHAPED = (decode_kernel.decode_frames, K.track_tcp)
FLOW_PARTS = ("keys", "flow", "toa", "proxy", "out", "expire")


def _code_lines(func) -> int:
    """Lines of ``func`` from its ``def`` to its end, without the docstring."""
    source = textwrap.dedent(inspect.getsource(func))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    lines = node.end_lineno - node.lineno + 1
    doc = node.body[0]
    if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
        lines -= doc.end_lineno - doc.lineno + 1
    return lines


def _helpers(module) -> list:
    return [v for v in vars(module).values() if accel.is_helper(v)]


@pytest.mark.parametrize("kern", SHAPED, ids=lambda k: k.__name__)
def test_kernels_are_short_and_take_few_arguments(kern) -> None:
    func = kern.py_func
    assert func.__code__.co_argcount <= MAX_KERNEL_ARGS
    assert _code_lines(func) <= MAX_LINES, f"{kern.__name__}: {_code_lines(func)} lines"
    _, specs = accel.parse_signature(kern.signature or "")
    assert len(specs) == func.__code__.co_argcount  # the signature declares each argument
    # the loop calls helpers: the work is done by functions named for their job
    called = {n for n in func.__code__.co_names if accel.is_helper(func.__globals__.get(n))}
    assert len(called) >= 4, called


def test_every_kernel_takes_few_arguments() -> None:
    """A table, its queues, its timeouts travel as tuples: no kernel takes more than
    MAX_KERNEL_ARGS arguments, and each is declared in its signature."""
    from pcapip.build_kernels import KERNEL_MODULES as BUILT

    for name in BUILT:
        importlib.import_module(name)
    kernels = accel.kernels()
    assert {"track_tcp", "expire", "walk_pcapng", "text_lines"} <= {k.__name__ for k in kernels}
    for kern in kernels:
        argc = kern.py_func.__code__.co_argcount
        assert argc <= MAX_KERNEL_ARGS, f"{kern.__name__}: {argc} arguments"
        assert len(accel.parse_signature(kern.signature or "")[1]) == argc, kern.__name__


KERNEL_MODULES = [
    decode_kernel,
    importlib.import_module("pcapip.decode.kernel_tunnels"),
    importlib.import_module("pcapip.decode.kernel_l4"),
    K,
    *(importlib.import_module(f"pcapip.flows.kernel_{n}") for n in FLOW_PARTS),
    kernel_bytes,
]


@pytest.mark.parametrize("module", KERNEL_MODULES, ids=lambda m: m.__name__)
def test_helpers_are_short(module) -> None:
    for h in _helpers(module):
        if h.__module__ != module.__name__:
            continue  # imported: checked in its own module
        assert _code_lines(h) <= MAX_LINES, f"{h.__name__}: {_code_lines(h)} lines"
        assert h.__code__.co_argcount <= MAX_HELPER_ARGS, h.__name__
        assert h.__doc__ or _code_lines(h) <= 10, f"{h.__name__} says nothing about its job"


@pytest.mark.parametrize("kern", SHAPED, ids=lambda k: k.__name__)
def test_kernels_inline_helpers_from_their_modules(kern) -> None:
    """The compile target resolves (numba is imported here), helpers from other files too."""
    target = accel.compile_target(kern.py_func)
    assert target is not kern.py_func
    if kern is K.track_tcp:  # the flow loop calls helpers of several files
        files = {h.__code__.co_filename for h in called_helpers(kern.py_func).values()}
        assert len(files) >= 4, files


def test_kernel_files_stay_small() -> None:
    for module in KERNEL_MODULES:
        with open(module.__file__, encoding="utf-8") as fh:
            assert sum(1 for _ in fh) <= MAX_FILE_LINES, module.__name__


def test_packet_columns_are_declared_once() -> None:
    """The flow loop's packet tuple follows PACKET_COLUMNS, which names Packets fields (and
    the tunnel columns the tracker computes, pcapip.flows.tunnels)."""
    from pcapip.decode.columns import Packets

    names = [n for n, _ in K.PACKET_COLUMNS]
    assert names[-1] == "data"
    assert set(names) <= set(Packets.__dataclass_fields__) | set(K.COMPUTED_COLUMNS)
    sig = accel.parse_signature(K.track_tcp.signature or "")[1]
    pk = sig[K.track_tcp.py_func.__code__.co_varnames.index("pk")]
    assert [spec[0] for spec in pk] == [t for _, t in K.PACKET_COLUMNS]
    assert [n for n, _ in decode_kernel.COLUMNS] == [
        n for n in Packets.__dataclass_fields__ if n in dict(decode_kernel.COLUMNS)
    ]


def test_the_every_packet_slot_is_the_test_switchs() -> None:
    """``PCAPIP_CHECK_RULES`` sets this slot (tests/flowpaths.py compares both runs)."""
    assert K.CT_EVERY_PACKET == 10 and K.N_COUNTERS == 11
    assert len({v for n, v in vars(K).items() if n.startswith("CT_")}) == K.N_COUNTERS
