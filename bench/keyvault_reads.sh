#!/bin/sh
# bench/keyvault_reads.sh: 1,000 Key Vault secret reads against the Key Vault twin, concurrency 50
# (50 tasks in one opsh process, 20 reads each), vs az. az cannot reach a local vault (see
# docs/keyvault.md "az"), so its side is a LOWER BOUND: N sequential `az account get-access-token
# --resource https://vault.azure.net` calls against the twin (the part every `az keyvault secret show`
# does before its own request), the mean extrapolated to 1,000 sequential calls (az runs one process
# per read). Run from the repository root after building: sh bench/keyvault_reads.sh [N_AZ=3]
set -eu
NAZ=${1:-3}
ROOT=$(pwd)
OPSH="$ROOT/build/opsh"
export OPSH_PATH="$ROOT"
DIR=$(mktemp -d /tmp/opsh-bench-kv.XXXXXX)
trap '"$OPSH" twin down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
"$OPSH" twin up --dir "$DIR" --without postgres,azurite,registry >/dev/null
eval "$("$OPSH" twin env --shell --dir "$DIR")"
export OPSH_TWIN_DIR="$DIR"
now() { date +%s.%N; }

t0=$(now)
"$OPSH" --env twin -e "
local opsh = require('opsh')
local vault = require('opsh.azure').keyvault()
vault:get('redis-primary-key')            -- challenge + token once, as any run would
local tasks = {}
for t = 1, 50 do
  tasks[t] = opsh.spawn(function() for _ = 1, 20 do vault:get('redis-primary-key') end end)
end
for t = 1, 50 do tasks[t]:wait() end
"
t1=$(now)
az account get-access-token --resource https://vault.azure.net -o none   # warm-up, not measured
t2=$(now)
i=0
while [ $i -lt "$NAZ" ]; do
  az account get-access-token --resource https://vault.azure.net -o none
  i=$((i + 1))
done
t3=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v n="$NAZ" 'BEGIN {
  o = b - a; per = (d - c) / n; z = per * 1000
  printf "opsh: 1000 reads, concurrency 50, one process (twin start excluded, token included): %.2f s\n", o
  printf "az:   %d sequential token-only calls, %.0f ms each; x 1000 = %.0f s (lower bound: extrapolated, no vault request)\n", n, per * 1000, z
  printf "az / opsh >= %.0fx\n", z / o }'
