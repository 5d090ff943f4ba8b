"""Flows as a partitioned Parquet dataset (``-o DIR/ --format parquet``): one folder per
capture day, hour and vantage point, Hive-style (``day=2026-12-06/hour=14/group=edge-1/``),
so pandas, Dask, DuckDB and Spark read it, and prune it, without pcapip."""

from __future__ import annotations

import os
from typing import Any

from pcapip.errors import UsageError

PARTITIONS = ("day", "hour", "group")
NO_GROUP = "all"  # the group of captures not split by vantage point


def is_dataset_target(output: str | os.PathLike[str] | None) -> bool:
    """An output naming a folder: ending in ``/`` (an existing directory named without it
    is refused as an output file, as before)."""
    if output is None:
        return False
    return os.fspath(output).endswith(("/", os.sep))


def group_label(directory: str) -> str:
    """A vantage point's folder as a partition value: its last component."""
    name = directory.rstrip("/").rsplit("/", 1)[-1]
    return name or NO_GROUP


def write_dataset(result: Any, directory: str | os.PathLike[str]) -> None:
    """Write ``result``'s flows (an Analysis, its selection) under ``directory``, replacing
    the partitions it writes. ``result.capture_groups`` names each capture's group."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as ds

    from pcapip.sources.urls import is_url

    flows = result.flows
    start = flows["start"]
    groups = result.capture_groups
    table = result.table
    if groups is None:
        group = np.full(len(flows), NO_GROUP, dtype=object)
    else:
        caps = table.rows.cols.slice("capture", 0, len(table))
        if result.selection is not None:
            caps = caps[result.selection]
        labels = np.array([group_label(g) for g in groups], dtype=object)
        group = labels[caps]
    frame = flows.assign(
        day=start.dt.strftime("%Y-%m-%d"), hour=start.dt.hour.astype("int8"), group=group
    )
    target = os.fspath(directory)
    fs = None
    if is_url(target):
        import fsspec

        fs, target = fsspec.core.url_to_fs(target)
    try:
        ds.write_dataset(
            pa.Table.from_pandas(frame, preserve_index=False),
            target,
            format="parquet",
            filesystem=fs,
            partitioning=list(PARTITIONS),
            partitioning_flavor="hive",
            basename_template="flows-{i}.parquet",
            existing_data_behavior="delete_matching",
        )
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"{directory}: cannot write the Parquet dataset: {exc}") from None
