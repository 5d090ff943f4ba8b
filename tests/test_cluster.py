"""``pcapip analyze`` on a real Dask cluster: a ``dask scheduler`` and two ``dask worker``
processes on loopback (and LocalClusters), with exactly the output of one read.

The split captures come from ``editcap``/``tcpdump`` at run time; the reference is the
single-process run of the same files and the unsplit capture.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "tests" / "pcaps"
DASK = Path(sys.executable).parent / "dask"

pytest.importorskip("distributed")
pytestmark = [pytest.mark.system, pytest.mark.slow]


def _pcapip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapip", *args], capture_output=True, text=True, timeout=timeout
    )


class Cluster:
    """A scheduler and its workers as processes of their own, stopped at the end."""

    def __init__(self, root: Path, workers: int) -> None:
        self.file = root / "scheduler.json"
        self.procs: list[subprocess.Popen[bytes]] = []
        log = open(root / "dask.log", "ab")  # noqa: SIM115 - closed in stop()
        self.log = log
        self.procs.append(self._start("scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", str(self.file)))
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self.add_worker() for _ in range(workers)]
        self.wait_for(workers)

    def _start(self, what: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(DASK), what, *args], stdout=self.log, stderr=self.log,
                                start_new_session=True)

    def add_worker(self) -> subprocess.Popen[bytes]:
        p = self._start("worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                        "--nworkers", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1")
        self.procs.append(p)
        return p

    def wait_for(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n, timeout=60)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if not DASK.exists():
        pytest.skip("the dask command is missing")
    c = Cluster(tmp_path, 2)
    try:
        yield c
    finally:
        c.stop()
        assert all(p.poll() is not None for p in c.procs)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "b40k.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "40000", str(path)],
        check=True, capture_output=True,
    )
    return path


def _split(src: Path, into: Path, count: int) -> list[str]:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["editcap", "-c", str(count), str(src), str(into / "part.pcap")], check=True)
    return sorted(str(p) for p in into.iterdir())


def _single(files: list[str], fmt: str, tmp: Path) -> bytes:
    out = tmp / f"single.{fmt}"
    r = _pcapip("analyze", *files, "--format", fmt, "-o", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def test_scheduler_and_two_workers_give_the_single_process_output(
    cluster: Cluster, capture: Path, tmp_path: Path
) -> None:
    whole = _single([str(capture)], "csv", tmp_path)
    rotated = tmp_path / "rot"
    rotated.mkdir()
    subprocess.run(["tcpdump", "-r", str(capture), "-w", str(rotated / "cap"), "-C", "3",
                    "-Z", "root"], check=True, capture_output=True)
    splits = {
        "tcpdump -C 3": sorted((str(p) for p in rotated.iterdir()), key=lambda p: (len(p), p)),
        "editcap -c 1999": _split(capture, tmp_path / "s1999", 1999),
        "editcap -c 7919": _split(capture, tmp_path / "s7919", 7919),
    }
    for count, files in splits.items():
        assert len(files) > 3
        for fmt in ("csv", "json"):
            out = tmp_path / f"cluster-{count.replace(' ', '')}.{fmt}"
            r = _pcapip("analyze", *files, "--scheduler", cluster.address, "--format", fmt,
                        "-o", str(out))
            assert r.returncode == 0, r.stderr
            assert out.read_bytes() == _single(files, fmt, tmp_path), (count, fmt)
        assert (tmp_path / f"cluster-{count.replace(' ', '')}.csv").read_bytes() == whole


def test_local_workers_and_file_urls(capture: Path, tmp_path: Path) -> None:
    files = _split(capture, tmp_path / "s", 3001)
    urls = [f"file://{f}" for f in files]
    out = tmp_path / "w.csv"
    r = _pcapip("analyze", "--workers", "2", *urls, "--format", "csv", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # no progress off a terminal, no Dask chatter
    assert out.read_bytes() == _single([str(capture)], "csv", tmp_path)
    # a glob over the URLs is the same list, sorted
    r = _pcapip("analyze", "--workers", "2", f"file://{tmp_path}/s/part_*.pcap", "--format",
                "csv", "-o", str(tmp_path / "g.csv"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.csv").read_bytes() == out.read_bytes()


def test_memory_urls_on_an_in_process_cluster(capture: Path, tmp_path: Path) -> None:
    """memory:// lives in one process: a LocalCluster of threads there reads it."""
    import fsspec
    from distributed import LocalCluster

    import pcapip

    files = _split(capture, tmp_path / "s", 9973)
    fs = fsspec.filesystem("memory")
    for f in files:
        fs.pipe(f"/caps/{Path(f).name}", Path(f).read_bytes())
    want = pcapip.analyze(files).to_csv()
    with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as lc:
        seen = []
        a = pcapip.analyze("memory://caps/*.pcap", scheduler=lc.scheduler_address,
                           cluster_progress=lambda p: seen.append(p.line()))
    assert a.to_csv() == want
    # a line per task as it ends (two tasks per worker, consecutive files each), counting files
    done = [int(line.split("/")[0]) for line in seen]
    most = -(-len(files) // 4)  # files a task: two tasks for each of the two workers
    assert len(seen) == -(-len(files) // most) > 1
    assert done == sorted(done) and len(set(done)) == len(done)
    assert seen[-1].startswith(f"{len(files)}/{len(files)} files")
    assert "inproc://" in seen[-1] or "tcp://" in seen[-1]


def test_a_worker_that_cannot_open_a_file_is_named(cluster: Cluster, tmp_path: Path) -> None:
    missing = f"file://{tmp_path}/gone.pcap"
    r = _pcapip("analyze", "--scheduler", cluster.address, str(PCAPS / "haproxy-v2.pcap"),
                missing, "--format", "csv", "-o", str(tmp_path / "o.csv"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    line = [ln for ln in r.stderr.splitlines() if "gone.pcap" in ln]
    assert line and "No such file" in line[0] and "on Dask worker tcp://127.0.0.1:" in line[0]


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    r = _pcapip("analyze", "--scheduler", "tcp://127.0.0.1:9", str(PCAPS / "haproxy-v2.pcap"),
                "--format", "csv", timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr


def _long_run(address: str, capture: Path, tmp_path: Path, copies: int,
              env: dict[str, str] | None = None) -> tuple[list[str], Path, subprocess.Popen]:
    """``copies`` of the capture, one after another, split into files and analysed on the
    cluster at ``address`` in the background: (the files, the output, the process)."""
    big = tmp_path / "big.pcap"
    subprocess.run(["mergecap", "-a", "-w", str(big), *[str(capture)] * copies], check=True)
    files = _split(big, tmp_path / "s", 4001)
    out = tmp_path / "o.csv"
    # a task per file: many short tasks, so the run is still going when a worker is killed
    env = {**(env or os.environ), "PCAPIP_FILES_PER_TASK": "1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "pcapip", "analyze", *files, "--scheduler", address,
         "--format", "csv", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    return files, out, run


def test_a_worker_killed_mid_run(cluster: Cluster, capture: Path, tmp_path: Path) -> None:
    """Kill one of two workers while tasks run: Dask moves its tasks to the other and the
    output is still the single-process one, or the run fails with one line; never a
    partial result."""
    files, out, run = _long_run(cluster.address, capture, tmp_path, 6)
    time.sleep(3.0)
    assert run.poll() is None, "the run ended before a worker could be killed"
    victim = cluster.workers[0]
    os.killpg(victim.pid, signal.SIGKILL)
    _, err = run.communicate(timeout=600)
    print("run after the kill:", run.returncode, err.strip()[-300:])
    if run.returncode == 0:
        assert out.read_bytes() == _single(files, "csv", tmp_path)
    else:
        assert run.returncode == 2 and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert not out.exists() or out.stat().st_size == 0


def test_a_cluster_without_workers_is_one_line(tmp_path: Path, capture: Path) -> None:
    """The only worker dies: Dask would wait for a new one for ever; pcapip gives up after
    the grace time with one line, exit 2, and writes nothing."""
    if not DASK.exists():
        pytest.skip("the dask command is missing")
    c = Cluster(tmp_path, 1)
    try:
        _, out, run = _long_run(c.address, capture, tmp_path, 4,
                                {**os.environ, "PCAPIP_NO_WORKER_GRACE": "4"})
        time.sleep(2.5)
        assert run.poll() is None, run.communicate()
        os.killpg(c.workers[0].pid, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        c.stop()
    assert run.returncode == 2, err
    assert "Traceback" not in err
    assert "no Dask worker left at tcp://127.0.0.1:" in err and "nothing written" in err
    assert not out.exists() or out.stat().st_size == 0


def test_partitioned_parquet_by_day_hour_and_group(capture: Path, tmp_path: Path) -> None:
    """Two vantage points (directories) never joined; the dataset reads back with pandas
    and Dask, without pcapip, row for row the CSV."""
    import dask.dataframe as dd
    import pandas as pd

    a = _split(capture, tmp_path / "edge-a", 5003)
    b = _split(capture, tmp_path / "edge-b", 7001)
    ds = tmp_path / "ds"
    r = _pcapip("analyze", "--workers", "2", "--group-by-dir", *a, *b, "--format", "parquet",
                "-o", f"{ds}/")
    assert r.returncode == 0, r.stderr
    names = {p.relative_to(ds).parts[:3] for p in ds.rglob("*.parquet")}
    groups = {n[2] for n in names}
    assert groups == {"group=edge-a", "group=edge-b"}
    assert all(n[0].startswith("day=") and n[1].startswith("hour=") for n in names)
    back = pd.read_parquet(ds).sort_values("flow").reset_index(drop=True)
    single = pd.read_csv(
        pd.io.common.StringIO(_single([str(capture)], "csv", tmp_path).decode()),
    )
    assert len(back) == 2 * len(single)  # each vantage point its own recording
    for g in ("edge-a", "edge-b"):
        mine = back[back["group"] == g]
        assert sorted(mine["client_ip"].dropna().astype(str)) == sorted(
            single["client_ip"].dropna().astype(str)
        )
    assert len(dd.read_parquet(str(ds)).compute()) == len(back)


def test_as_dask_frames(tmp_path: Path) -> None:
    import dask.dataframe as dd

    import pcapip

    files = [str(PCAPS / "haproxy-v2.pcap"), str(PCAPS / "flow-proxy-misc.pcap")]
    a = pcapip.analyze(files, workers=1, as_dask=True)
    assert isinstance(a.flows, dd.DataFrame)
    assert a.flows.compute().equals(pcapip.analyze(files).flows)
    assert len(a.findings.compute()) == len(a.pandas.findings)


def test_no_dask_on_the_normal_path() -> None:
    code = (
        "import sys, pcapip; pcapip.analyze(sys.argv[1]).to_csv();"
        "print(sorted(m for m in ('dask', 'distributed', 'fsspec') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code, str(PCAPS / "haproxy-v2.pcap")],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_files_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tasks per worker the cluster has, at most MAX_FILES_PER_TASK files each;
    PCAPIP_FILES_PER_TASK fixes it (a bad value is ignored)."""
    from pcapip.cluster.run import MAX_FILES_PER_TASK, files_per_part

    class Seen:  # what Client.scheduler_info reports: the workers present now
        def __init__(self, n: int) -> None:
            self.n = n

        def scheduler_info(self, n_workers: int = 0) -> dict:
            return {"workers": {f"tcp://w{k}": {} for k in range(self.n)}}

    monkeypatch.delenv("PCAPIP_FILES_PER_TASK", raising=False)
    assert files_per_part(20, Seen(2)) == 5
    assert files_per_part(3, Seen(2)) == 1
    assert files_per_part(7, Seen(0)) == 4  # no worker yet: as for one
    assert files_per_part(500, Seen(4)) == MAX_FILES_PER_TASK
    monkeypatch.setenv("PCAPIP_FILES_PER_TASK", "3")
    assert files_per_part(500, Seen(4)) == 3
    monkeypatch.setenv("PCAPIP_FILES_PER_TASK", "zero")
    assert files_per_part(20, Seen(2)) == 5


def test_the_progress_line_fits_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A wrapped line could not be rewritten in place: it is cut to the terminal's width."""
    import shutil

    from pcapip.cli.analyze import _cluster_line
    from pcapip.cluster.run import ClusterProgress

    p = ClusterProgress(20)
    p.done, p.bytes_read = 15, 670_300_000
    p.workers = {"tcp://127.0.0.1:33921": [10, 446_800_000], "tcp://127.0.0.1:38575": [5, 223_500_000]}
    for cols in (50, 300):
        monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, cols=cols: os.terminal_size((cols, 24)))
        _cluster_line(p)
        line = capsys.readouterr().err.removeprefix("\r").removesuffix("\x1b[K")
        full = f"pcapip: cluster: {p.line()}"
        assert line == full if len(full) < cols else (len(line) == cols - 1 and line.endswith("…"))
        assert line.startswith("pcapip: cluster: 15/20 files")
