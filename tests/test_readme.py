"""The README stays true: its output schema is the declared columns, its tunnels table the
declared encapsulations, its findings table matches the catalogue, its test command is CI's."""

from __future__ import annotations

import re
from pathlib import Path

from pcapip.decode.tunnels import encapsulations_table
from pcapip.flows.columns import SCHEMA, schema_table
from pcapip.flows.findings import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_output_schema_table_is_the_declared_columns() -> None:
    # the table between the section's prose and the next section, exactly as generated
    table = "".join(f"{line}\n" for line in _section("Output schema").splitlines()
                    if line.startswith("|"))
    assert table == schema_table()
    listed = re.findall(r"`([a-z_]+)`", "".join(line.split(" | ")[0] for line in
                                                 table.splitlines()[2:]))
    assert listed == [c.name for c in SCHEMA]


def test_tunnels_table_is_the_declared_encapsulations() -> None:
    table = "".join(f"{line}\n" for line in _section("Tunnels and mirrors").splitlines()
                    if line.startswith("|"))
    assert table == encapsulations_table()


def test_every_vocabulary_word_is_in_its_columns_doc() -> None:
    closed = [c for c in SCHEMA if c.vocabulary]
    assert {c.name for c in closed} >= {"transport", "method", "status"}
    for c in closed:
        assert re.findall(r"`([a-z0-9-]+)`", c.doc) == list(c.vocabulary), c.name


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
