#!/bin/bash
# Compare `pcapip analyze --format csv` (stdout, stderr, exit status) on every capture in
# tests/pcaps and tests/pcaps/public between another checkout and this one.
#   bench/compare_csv.sh /path/to/other/checkout [python] [outdir]
# Prints the diff; exit status 1 when anything differs.
set -u
ref=$(cd "$1" && pwd); here=$(cd "$(dirname "$0")/.." && pwd)
py=${2:-python}; out=${3:-$(mktemp -d)}
mkdir -p "$out/ref" "$out/here"
for f in "$here"/tests/pcaps/*.pcap* "$here"/tests/pcaps/public/*; do
  [ -f "$f" ] || continue
  case "$f" in *.json|*.md) continue;; esac
  b=$(echo "${f#"$here"/tests/pcaps/}" | sed 's|/|__|g')
  for side in ref here; do
    root=$ref; [ "$side" = here ] && root=$here
    (cd "$root" && PYTHONPATH="$root" "$py" -m pcapip analyze "$f" --format csv --no-progress \
      > "$out/$side/$b.csv" 2> "$out/$side/$b.err"; echo "exit $?" >> "$out/$side/$b.err")
  done
done
echo "$(ls "$out/ref" | wc -l) files in $out"
diff -r "$out/ref" "$out/here"
