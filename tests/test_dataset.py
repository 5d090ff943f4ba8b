"""``-o DIR/ --format parquet``: the Hive-partitioned dataset, checked against what
Arrow's own dataset writer makes of the same rows, and as an operator writes it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import pcapip
from pcapip.report.dataset import PARTITIONS, partitioned_frame, write_dataset

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcaps"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> pcapip.Analysis:
    """Captures of several days and hours, in two directories (two vantage points)."""
    top = tmp_path_factory.mktemp("groups")
    names = ["troubleshooting.pcap", "haproxy-v1.pcap", "haproxy-v2.pcap",
             "flow-proxy-misc.pcap", "eth-mixed-us-le.pcap"]
    paths = []
    for k, name in enumerate(names):
        folder = top / f"edge-{k % 2}"
        folder.mkdir(exist_ok=True)
        shutil.copy(PCAPS / name, folder / name)
        paths.append(str(folder / name))
    return pcapip.analyze(paths, group_by_dir=True)


def _files(top: Path) -> dict[str, pa.Table]:
    return {str(p.relative_to(top)): pq.read_table(p) for p in sorted(top.rglob("*.parquet"))}


def test_the_dataset_is_what_arrows_writer_writes(analysis: pcapip.Analysis,
                                                  tmp_path: Path) -> None:
    """The same folders and files, each with the same rows in the same order, schema and
    metadata, as ``pyarrow.dataset.write_dataset`` (one thread, order kept) writes."""
    frame = partitioned_frame(analysis)
    assert frame["day"].nunique() > 1 and frame["hour"].nunique() > 1
    assert frame["group"].nunique() == 2
    mine, ref = tmp_path / "mine", tmp_path / "ref"
    write_dataset(analysis, f"{mine}/")
    ds.write_dataset(pa.Table.from_pandas(frame, preserve_index=False), ref, format="parquet",
                     partitioning=list(PARTITIONS), partitioning_flavor="hive",
                     basename_template="flows-{i}.parquet", use_threads=False)
    got, want = _files(mine), _files(ref)
    assert sorted(got) == sorted(want) and len(got) > 3
    for name, table in want.items():
        assert got[name].equals(table, check_metadata=True), name
    assert sum(t.num_rows for t in got.values()) == len(analysis.flows)


def test_writing_again_replaces_only_the_partitions_written(analysis: pcapip.Analysis,
                                                            tmp_path: Path) -> None:
    """As Arrow's ``existing_data_behavior="delete_matching"``: a partition written again
    loses its earlier files; a partition not written keeps its own."""
    top = tmp_path / "ds"
    write_dataset(analysis, f"{top}/")
    first = sorted(top.rglob("flows-0.parquet"))
    stale = first[0].with_name("flows-7.parquet")
    stale.write_bytes(first[0].read_bytes())
    other = top / "day=1999-01-01" / "hour=0" / "group=elsewhere" / "flows-0.parquet"
    other.parent.mkdir(parents=True)
    other.write_bytes(first[0].read_bytes())
    write_dataset(analysis, f"{top}/")
    assert not stale.exists() and other.exists()
    assert sorted(top.rglob("flows-0.parquet")) == sorted([*first, other])


def test_the_cli_writes_to_a_url_fsspec_reaches(tmp_path: Path) -> None:
    """``-o file:///…/`` (any fsspec store) writes the dataset; a scheme fsspec does not
    know is one error line before anything is read, exit 2."""
    target = tmp_path / "out"
    target.mkdir()
    cap = str(PCAPS / "troubleshooting.pcap")

    def run(out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pcapip", "analyze", cap, "--format",
                               "parquet", "-o", out], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)

    r = run(f"file://{target}/flows/")
    assert r.returncode == 0, r.stderr
    back = pq.read_table(target / "flows").to_pandas()
    assert len(back) == len(pcapip.analyze(cap).flows)
    r = run("nosuch://bucket/flows/")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "pcapip: error: -o nosuch://bucket/flows/: Protocol not known: nosuch"
    ]
