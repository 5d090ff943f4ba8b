"""The fuzz targets in ``fuzz/`` run in CI: each for a few seconds on a fixed seed, from its
seed corpus, with its invariants checked (``fuzz/README.md`` has the long runs); and every
input a fuzzer once flagged (``tests/pcaps/fuzz/``) is replayed through its target."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
TARGETS = [
    "capture", "stdin", "decode", "roundtrip", "toa", "proxy", "tunnels", "show", "filter",
    "resolve", "rules",
]  # fmt: skip
SECONDS = 3  # each: 11 targets, about 60 s in all with start-up

pytest.importorskip("atheris")


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_clean(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    seeded = subprocess.run(
        [sys.executable, str(FUZZ / "seed.py"), target, str(corpus)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert any(corpus.iterdir()), "no seeds"
    r = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"fuzz_{target}.py"),
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            "-timeout=20",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=FUZZ,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stat::number_of_executed_units" in r.stderr
    runs = int(r.stderr.split("stat::number_of_executed_units:")[1].split()[0])
    assert runs > 10, r.stderr[-1000:]
    assert not list(tmp_path.glob("crash-*")), "the fuzzer wrote a crash input"


REGRESSIONS = sorted((ROOT / "tests" / "pcaps" / "fuzz").glob("*.bin"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_flagged_inputs_hold_the_invariants(path: Path) -> None:
    """``TARGET-what.bin``: replayed through fuzz/fuzz_TARGET.py's check."""
    target = path.name.split("-")[0]
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        f"import fuzz_{target} as t; t.test_one(open(sys.argv[2], 'rb').read()); print('ok')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(FUZZ), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=FUZZ,
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_roundtrip_compares_most_valid_frames() -> None:
    """The round-trip target is no vacuous pass: on its seeds, dpkt and scapy each decode most
    of the frames built from them unambiguously, and every comparison holds."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import fuzz_roundtrip as t\n"
        "for s in t.seeds(): t.test_one(s)\n"
        "c = t.COUNTS; print(c['runs'], c['dpkt built'], c['scapy built'])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(FUZZ)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=FUZZ,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    runs, by_dpkt, by_scapy = map(int, r.stdout.split()[-3:])
    assert runs >= 300
    assert by_dpkt >= 0.7 * runs and by_scapy >= 0.5 * runs, (runs, by_dpkt, by_scapy)
