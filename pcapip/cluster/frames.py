"""An Analysis whose frames are Dask DataFrames (``pcapip.analyze(..., as_dask=True)``), to
go on computing on the cluster; everything else is the Analysis's own."""

from __future__ import annotations

from typing import Any

from pcapip.report.analysis import Analysis

FRAMES = ("flows", "egress", "clients", "origins", "findings")
ROWS_PER_PARTITION = 1 << 20


class DaskAnalysis:
    """``flows``, ``egress``, ``clients``, ``origins``, ``findings`` as Dask DataFrames
    (about a million rows per partition); ``pandas`` is the Analysis they come from."""

    def __init__(self, analysis: Analysis) -> None:
        self.pandas = analysis

    def __getattr__(self, name: str) -> Any:
        if name in FRAMES:
            import dask.dataframe as dd

            df = getattr(self.pandas, name)
            return dd.from_pandas(df, npartitions=max(1, -(-len(df) // ROWS_PER_PARTITION)))
        return getattr(self.pandas, name)

    def __len__(self) -> int:
        return len(self.pandas)

    def __repr__(self) -> str:
        return repr(self.pandas).replace("<Analysis", "<Analysis (Dask frames)", 1)

    def filter(self, expr: str = "", *, problems: bool = False) -> DaskAnalysis:
        return DaskAnalysis(self.pandas.filter(expr, problems=problems))
