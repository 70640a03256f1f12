#!/usr/bin/env bash
# Every benchmark, each printing its figures next to the peer measured in the same run.
set -uo pipefail
OPSH=$(realpath "${1:-build/opsh}")
cd "$(dirname "$0")/.."
echo "== start-up"; bash bench/startup.sh "$OPSH"
echo; echo "== tasks"; "$OPSH" bench/tasks.lua
for b in bench/*.sh; do
  case $b in bench/run.sh|bench/startup.sh) continue ;; esac
  echo; echo "== $(basename "$b" .sh)"; bash "$b" "$OPSH"
done
for b in bench/*.lua; do
  case $b in bench/tasks.lua) continue ;; esac
  echo; echo "== $(basename "$b" .lua)"; "$OPSH" "$b"
done
