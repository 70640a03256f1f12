#!/usr/bin/env bash
# The binary exports the engine's C API (opsh_*) and nothing else: a Lua C module loaded with
# require must not find (or collide with) any other symbol of ours.
set -u
OPSH=${1:?usage: exports_test.sh path/to/opsh}
syms=$(nm -D --defined-only "$OPSH" | awk '{print $3}') || exit 1
[[ -n $syms ]] || { echo "FAIL: nm -D found no exported symbol in $OPSH"; exit 1; }
bad=$(grep -v '^opsh_' <<<"$syms")
if [[ -n $bad ]]; then
  echo "FAIL: $OPSH exports symbols without the opsh_ prefix:"
  sed 's/^/  /' <<<"$bad"
  exit 1
fi
for want in opsh_yield opsh_task_ready opsh_error; do
  grep -qx "$want" <<<"$syms" || { echo "FAIL: the engine API symbol $want is not exported"; exit 1; }
done
# The bindings built as shared objects (engine/modules.c) export their luaopen_opsh_<name> only
for so in "$(dirname "$OPSH")"/lib/opsh/*.so; do
  [[ -e $so ]] || continue
  name=$(basename "$so" .so)
  got=$(nm -D --defined-only "$so" | awk '{print $3}')
  if [[ $got != "luaopen_opsh_$name" ]]; then
    echo "FAIL: $so exports more or other than luaopen_opsh_$name:"
    sed 's/^/  /' <<<"$got"
    exit 1
  fi
done
echo "ok: $(wc -l <<<"$syms") symbols, all opsh_*"
