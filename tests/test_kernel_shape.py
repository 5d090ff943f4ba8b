"""The compiled kernels read like the rest of the code: short functions, short argument lists.

Each kernel is a loop over a batch that calls ``@kernel_helper`` functions named for their
job (numba inlines them); packet columns travel as one tuple (a struct of arrays) and the
flow loop's outputs as one matrix. The flow loop's test switch ``CT_EVERY_PACKET`` hands
every packet to the Python rules, and the rows must not change.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
from engine_ref import PCAPS, capture_files

from pcapip.decode import decode
from pcapip.decode import kernel as decode_kernel
from pcapip.flows import kernel as K
from pcapip.flows import tracker as tracker_mod
from pcapip.flows.table import finish_table
from pcapip.report.analysis import Analysis
from pcapip.sources import accel, open_capture

MAX_LINES = 80  # lines of code in one function, docstring not counted
MAX_KERNEL_ARGS = 15
MAX_HELPER_ARGS = 10
SHAPED = (decode_kernel.decode_frames, K.track_tcp)


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


@pytest.mark.parametrize("module", [decode_kernel, K], ids=lambda m: m.__name__)
def test_helpers_are_short_and_live_beside_their_kernels(module) -> None:
    helpers = _helpers(module)
    assert len(helpers) >= 10
    for h in helpers:
        assert _code_lines(h) <= MAX_LINES, f"{h.__name__}: {_code_lines(h)} lines"
        assert h.__code__.co_argcount <= MAX_HELPER_ARGS, h.__name__
        assert h.__doc__ or _code_lines(h) <= 10, f"{h.__name__} says nothing about its job"
        assert h.__code__.co_filename == module.__file__
    # the compile targets resolve (numba is imported here): no helper from another file
    for kern in SHAPED:
        if kern.py_func.__module__ == module.__name__:
            assert accel.compile_target(kern.py_func) is not kern.py_func


def test_packet_columns_are_declared_once() -> None:
    """The flow loop's packet tuple follows PACKET_COLUMNS, which names Packets fields."""
    from pcapip.decode.columns import Packets

    names = [n for n, _ in K.PACKET_COLUMNS]
    assert names[-1] == "data" and set(names) <= set(Packets.__dataclass_fields__)
    sig = accel.parse_signature(K.track_tcp.signature or "")[1]
    pk = sig[K.track_tcp.py_func.__code__.co_varnames.index("pk")]
    assert [spec[0] for spec in pk] == [t for _, t in K.PACKET_COLUMNS]
    assert [n for n, _ in decode_kernel.COLUMNS] == [
        n for n in Packets.__dataclass_fields__ if n in dict(decode_kernel.COLUMNS)
    ]


# ---------------------------------------------------------------- the every-packet switch
def _analyze(path: Path, backend: str, every: bool, monkeypatch: pytest.MonkeyPatch):
    init = tracker_mod._TcpRows.__init__

    def switched(self, t, b) -> None:
        init(self, t, b)
        self.ct[K.CT_EVERY_PACKET] = 1 if every else 0

    by_rules = [0]  # TCP packets the Python rules applied
    python = tracker_mod._TcpRows._python

    def counted(self, *args) -> None:
        by_rules[0] += 1
        python(self, *args)

    monkeypatch.setattr(tracker_mod._TcpRows, "__init__", switched)
    monkeypatch.setattr(tracker_mod._TcpRows, "_python", counted)
    tracker = tracker_mod.FlowTracker(backend=backend)
    with open_capture(path, batch_size=64) as src:
        for batch in src:
            tracker.feed(decode(batch, backend=backend), 0)
    monkeypatch.undo()
    assert tracker._tcp is None or isinstance(tracker._tcp, tracker_mod._TcpRows)
    return Analysis(finish_table(tracker, [str(path)])), tracker.stats["packets_tcp"], by_rules[0]


CAPTURES = capture_files()


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_every_packet_through_the_python_rules_gives_the_same_rows(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = "pure" if accel.pure_forced() else "compiled"
    loop, tcp, loop_rules = _analyze(path, backend, False, monkeypatch)
    rules, tcp_again, by_rules = _analyze(path, backend, True, monkeypatch)
    assert rules.to_csv() == loop.to_csv()
    assert rules.table.header_frames == loop.table.header_frames
    assert [(f.flow, f.code, f.frame) for f in rules.table.findings] == [
        (f.flow, f.code, f.frame) for f in loop.table.findings
    ]
    # the switch really handed every TCP packet to the Python rules
    assert by_rules == tcp == tcp_again
    assert loop_rules <= tcp


def test_the_switch_is_off_by_default_and_the_loop_applies_packets_itself() -> None:
    tracker = tracker_mod.FlowTracker(backend="pure")
    with open_capture(PCAPS / "haproxy-v2.pcap") as src:
        for batch in src:
            tracker.feed(decode(batch, backend="pure"), 0)
    assert tracker._tcp is not None and tracker._tcp.ct[K.CT_EVERY_PACKET] == 0
    assert K.N_COUNTERS == K.CT_EVERY_PACKET + 1 == 11
    assert tracker.per_packet < tracker.stats["packets_tcp"]  # (no UDP in this capture)
