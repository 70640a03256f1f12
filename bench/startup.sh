#!/usr/bin/env bash
# Start-up: `opsh -e ''` next to `lua5.4 -e ''` (run alternately, same machine) and
# `kubectl version --client`. Target (issue 8): opsh's median wall <= 1.5x lua5.4's.
set -euo pipefail
OPSH=${1:-build/opsh}
RUNS=${RUNS:-41}
TARGET=1.5
here=$(dirname "$0")
tool=$(mktemp -d)/spawnrss
trap 'rm -rf "$(dirname "$tool")"' EXIT
cc -O2 -o "$tool" "$here/spawnrss.c"
declare -A wall rss
while read -r label w r; do wall[$label]=$w; rss[$label]=$r; done < <(
  "$tool" "$RUNS" opsh "$OPSH" -e '' --- lua5.4 lua5.4 -e ''
  if command -v kubectl >/dev/null; then "$tool" 5 kubectl kubectl version --client; fi
)
printf '%-10s %10s %12s %16s\n' command "wall (ms)" "peak RSS" "wall vs opsh"
for label in opsh lua5.4 kubectl; do
  [[ -n ${wall[$label]:-} ]] || continue
  printf '%-10s %10.1f %9.1f MB %15.2fx\n' "$label" "$(echo "${wall[$label]} * 1000" | bc -l)" \
    "$(echo "${rss[$label]} / 1024" | bc -l)" "$(echo "${wall[$label]} / ${wall[opsh]}" | bc -l)"
done
ratio=$(echo "${wall[opsh]} / ${wall[lua5.4]}" | bc -l)
verdict=$(echo "$ratio <= $TARGET" | bc -l)
printf 'opsh / lua5.4 = %.2fx (target <= %sx): %s\n' "$ratio" "$TARGET" "$([[ $verdict == 1 ]] && echo met || echo NOT met)"
