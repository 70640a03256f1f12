#!/usr/bin/env bash
# run.sh BUILD SECONDS TARGET...: run each libFuzzer target for SECONDS, one after the other (the
# machine is shared), starting from its seed corpus. New inputs go to BUILD/corpus/<target>, a
# crashing input to BUILD/crashes/<target>-*. Prints each run's executions and crashes; fails if
# any target crashed. A crash worth keeping belongs in tests/fuzz/corpus/<target> with its fix.
set -u
build=${1:?usage: run.sh BUILD SECONDS TARGET...}
seconds=${2:?}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:quarantine_size_mb=16:intercept_tls_get_addr=0}   # see the Makefile
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=()
for t in "$@"; do
  mkdir -p "$build/corpus/$t" "$build/crashes"
  log="$build/fuzz-$t.log"
  dict=()
  [[ -f $here/$t.dict ]] && dict=(-dict="$here/$t.dict")
  # -detect_leaks=0: Lua frees an input's garbage later, which libFuzzer's per-input leak check
  # takes for a leak and then spends most of its time confirming (LeakSanitizer still runs at exit)
  "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -detect_leaks=0 \
    -artifact_prefix="$build/crashes/$t-" "${dict[@]}" "$build/corpus/$t" "$here/corpus/$t" >"$log" 2>&1
  code=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [[ -z $execs ]]; then execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#'); fi
  crashes=0
  if [[ $code -ne 0 ]]; then
    crashes=1
    status=1
    echo "fuzz $t: CRASH (exit $code); see $log"
    grep -E 'ERROR|a bug|artifact_prefix|Test unit written' "$log" | head -5
  fi
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  summary+=("$(printf '%-5s %4ss  %10s executions  %s crash(es)  %s  corpus %s' "$t" "$seconds" "${execs:-?}" "$crashes" "$cov" \
    "$(ls "$build/corpus/$t" | wc -l)")")
done
printf 'fuzz %s\n' "${summary[@]}"
exit $status
