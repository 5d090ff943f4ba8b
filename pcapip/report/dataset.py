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
    the partitions it writes."""
    import pyarrow as pa

    frame = partitioned_frame(result)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)  # one schema for every file
    try:
        _write_partitions(arrow, frame, os.fspath(directory))
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"{directory}: cannot write the Parquet dataset: {exc}") from None
    except UnicodeEncodeError:  # (pyarrow's file systems take only UTF-8 names)
        raise UsageError(
            f"{directory}: cannot write the Parquet dataset: its name is not valid UTF-8"
        ) from None


def partitioned_frame(result: Any) -> Any:
    """``result``'s flows with the partition columns: the day and hour of the first packet
    (UTC), the group (``result.capture_groups`` names each capture's group)."""
    import numpy as np

    flows = result.flows
    start = flows["start"]
    groups = result.capture_groups
    if groups is None:
        group = np.full(len(flows), NO_GROUP, dtype=object)
    else:
        caps = result.table.rows.cols.slice("capture", 0, len(result.table))
        if result.selection is not None:
            caps = caps[result.selection]
        labels = np.array([group_label(g) for g in groups], dtype=object)
        group = labels[caps]
    return flows.assign(
        day=start.dt.strftime("%Y-%m-%d"), hour=start.dt.hour.astype("int8"), group=group
    )


def _write_partitions(table: Any, frame: Any, target: str) -> None:
    """Each partition's rows, in their order, as ``flows-0.parquet`` in its Hive folder
    (the folder's earlier files deleted), written in this thread. Arrow's own
    ``write_dataset`` leaves writer threads that now and then abort the interpreter at exit
    ("terminate called without an active exception", apache/arrow#36980)."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from pcapip.sources.urls import is_url

    fs: Any = pafs.LocalFileSystem()
    if is_url(target):
        import fsspec

        remote, target = fsspec.core.url_to_fs(target)
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(remote))
    hive = ds.partitioning(table.select(list(PARTITIONS)).schema, flavor="hive")
    body = table.drop_columns(list(PARTITIONS))
    rows = frame.groupby(list(PARTITIONS), sort=True, dropna=False).indices
    for values, where in rows.items():
        key = ds.scalar(True)
        for name, value in zip(PARTITIONS, values, strict=True):
            known = value is not None and value == value  # (NaN: no start time)
            key = key & (ds.field(name) == value if known else ds.field(name).is_null())
        folder = f"{target.rstrip('/')}/{hive.format(key)[0]}"
        fs.create_dir(folder, recursive=True)
        fs.delete_dir_contents(folder, missing_dir_ok=True)
        pq.write_table(body.take(where), f"{folder}/flows-0.parquet", filesystem=fs)
