#!/usr/bin/env bash
# Start-up: `opsh -e ''` next to `lua5.4 -e ''` and `kubectl version --client`, same run, same machine.
# Target (issue 2): opsh <= 5 ms and <= 8 MB.
set -euo pipefail
OPSH=${1:-build/opsh}
RUNS=${RUNS:-21}
here=$(dirname "$0")
tool=$(mktemp -d)/spawnrss
trap 'rm -rf "$(dirname "$tool")"' EXIT
cc -O2 -o "$tool" "$here/spawnrss.c"
declare -A wall rss
while read -r label w r; do wall[$label]=$w; rss[$label]=$r; done < <(
  "$tool" "$RUNS" opsh "$OPSH" -e ''
  "$tool" "$RUNS" lua5.4 lua5.4 -e ''
  if command -v kubectl >/dev/null; then "$tool" 5 kubectl kubectl version --client; fi
)
printf '%-10s %10s %12s %16s\n' command "wall (ms)" "peak RSS" "wall vs opsh"
for label in opsh lua5.4 kubectl; do
  [[ -n ${wall[$label]:-} ]] || continue
  printf '%-10s %10.1f %9.1f MB %15.2fx\n' "$label" "$(echo "${wall[$label]} * 1000" | bc -l)" \
    "$(echo "${rss[$label]} / 1024" | bc -l)" "$(echo "${wall[$label]} / ${wall[opsh]}" | bc -l)"
done
