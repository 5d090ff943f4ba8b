"""The output formats of an analysis and the file extensions that name them, declared once.

Kept free of imports so the CLI can offer the choices without loading numpy.
"""

from __future__ import annotations

#: table: the Rich report; csv; tsv: tab-separated, no quoting: a tab, newline, carriage
#: return or backslash inside a cell is written as \t \n \r \\ (the escapes of
#: PostgreSQL's COPY text format and of most TSV readers); json: JSON Lines; parquet:
#: typed columns.
FORMATS: tuple[str, ...] = ("table", "csv", "tsv", "json", "parquet")

#: File extension -> format; any other extension is refused unless --format is given.
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "table",
}
