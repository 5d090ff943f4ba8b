"""The README stays true: its findings table matches the catalogue, its test command is CI's."""

from __future__ import annotations

import re
from pathlib import Path

from pcapip.flows.findings import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_findings_table_lists_every_catalogue_code_with_its_severity() -> None:
    section = README.split("## Findings", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^\| `([a-z0-9_.-]+)` \| (\w+) \|", section, re.M))
    assert set(listed) == set(CATALOGUE)
    for code, kind in CATALOGUE.items():
        assert listed[code] == kind.level.name.lower(), code


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == test_command
