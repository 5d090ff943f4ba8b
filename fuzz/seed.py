"""Write a target's seed corpus: python fuzz/seed.py TARGET FOLDER."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_corpus  # noqa: E402

if __name__ == "__main__":
    target, folder = sys.argv[1], Path(sys.argv[2])
    mod = importlib.import_module(f"fuzz_{target}")
    print(f"{target}: {write_corpus(folder, mod.seeds())} seeds in {folder}")
