#!/usr/bin/env bash
# Run one fuzz target for a while: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#   TARGET: capture stdin decode roundtrip toa proxy tunnels show filter resolve rules
#   (fuzz/fuzz_TARGET.py)
# The corpus grows in fuzz/corpus/TARGET/ (seeded from the target's seeds() on first use,
# not committed); crashes are written to fuzz/crashes/TARGET/ (crash-*: add each to
# tests/pcaps/fuzz/ with a test, see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/run.sh TARGET SECONDS [flags]}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS [flags]}"
shift 2
PY="${PYTHON:-../.venv/bin/python}"
corpus="corpus/$target"
mkdir -p "$corpus" "crashes/$target"
if [ -z "$(ls -A "$corpus")" ]; then
    "$PY" seed.py "$target" "$corpus"
fi
exec "$PY" "fuzz_$target.py" "$corpus" -max_total_time="$seconds" \
    -artifact_prefix="crashes/$target/" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 "$@"
