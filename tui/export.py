"""Writing the current view to CSV: flows in ``pcapip analyze``'s schema, or the groups."""

from __future__ import annotations

import csv
import io
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def write_view(path: str, *, analysis: Any, model: Any, groups: pd.DataFrame | None) -> int:
    """Write the flows shown (in the model's view order) or the ``groups`` frame to
    ``path``; returns the rows written."""
    if groups is not None:
        groups.to_csv(path, index=False, lineterminator="\n")
        return len(groups)
    from pcapip.tui.detail import TABLE_READS

    with TABLE_READS:  # (the detail may read the same table meanwhile)
        text = analysis.to_csv()
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    flows = model.flows_shown()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for f in flows:
        w.writerow(body[int(f) - 1])
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return len(flows)


def default_path(capture: str | None, stem: str | None, grouping: str) -> str:
    """``<capture stem>-flows.csv`` (or ``-egress``/``-client``) in the current directory,
    absolute, so the dialog shows where the file will land."""
    stem = stem or os.path.splitext(os.path.basename(capture or "capture"))[0]
    return os.path.abspath(f"{stem}-{grouping}.csv")
