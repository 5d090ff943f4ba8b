"""The flow stage's one path, run the ways the tests compare.

* ``"normal"``: what production runs (compiled once numba is loaded or the
  ahead-of-time module is current, else the loop's pure-Python twin);
* ``"rules"``: the test switch ``PCAPIP_CHECK_RULES=1``: the compiled loop
  still finds and creates every flow, but hands every packet to the per-packet
  rules (``pcapip.flows.machine``), which the other runs are compared with;
* ``"compiled"``: numba loaded first, so the loop runs compiled from the first
  packet (unless ``PCAPIP_PURE_PYTHON`` is set, as before);
* ``"pure"``: ``PCAPIP_PURE_PYTHON=1``: the pure twin everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pcapip.flows.run import read_captures, registry_for
from pcapip.flows.tracker import FlowTracker
from pcapip.report.analysis import Analysis
from pcapip.sources import accel

WAYS = ("normal", "rules", "compiled", "pure")


@contextmanager
def flow_path(way: str) -> Iterator[None]:
    """Run the block the way ``way`` names (see the module docstring)."""
    assert way in WAYS, way
    names = (accel.CHECK_RULES_ENV, accel.PURE_ENV)
    saved = {k: os.environ.get(k) for k in names}
    try:
        if way == "rules":
            os.environ[accel.CHECK_RULES_ENV] = "1"
        elif way == "pure":
            os.environ[accel.PURE_ENV] = "1"
        elif way == "compiled":
            accel.numba_importable()  # numba loaded: the table goes compiled at once
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tracked(
    paths: Sequence[Any], way: str, *, toa_kinds: Any = None, **kw: Any
) -> tuple[Any, list, FlowTracker]:
    """``read_captures(paths, **kw)`` run ``way``: (table, errors, tracker). Checks that the
    way ran as named: in ``rules`` every TCP and UDP packet went through the rules."""
    with flow_path(way):
        ports = kw.pop("vxlan_ports", ())
        tracker = FlowTracker(registry=registry_for(toa_kinds), vxlan_ports=ports)
        table, errors = read_captures(list(paths), tracker=tracker, toa_kinds=toa_kinds, **kw)
    s = table.stats
    if way == "rules":
        assert tracker.per_packet == s["packets_tcp"] + s["packets_udp"]
    if way == "compiled" and not accel.pure_forced() and s["packets_tcp"]:
        assert tracker.compiled
    if way == "pure" and s["packets_tcp"]:
        assert not tracker.compiled
    return table, errors, tracker


def analysis(paths: Sequence[Any], way: str, **kw: Any) -> Analysis:
    """``Analysis`` of ``paths`` run ``way`` (see :func:`tracked`)."""
    table, errors, _ = tracked(paths, way, **kw)
    return Analysis(table, errors)
