#!/bin/sh
# bench/azure_az.sh: 50 resource reads against the ARM twin — opsh in one process (azure.aks.pool,
# sequential) vs 50 `az aks nodepool show` invocations, same twin, same run. Run from the repository
# root after building: sh bench/azure_az.sh [N=50]
set -eu
N=${1:-50}
ROOT=$(pwd)
OPSH="$ROOT/build/opsh"
export OPSH_PATH="$ROOT"
DIR=$(mktemp -d /tmp/opsh-bench-az.XXXXXX)
trap '"$OPSH" twin down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
"$OPSH" twin up --dir "$DIR" --without postgres,redis,azurite,registry >/dev/null
eval "$("$OPSH" twin env --shell --dir "$DIR")"
export OPSH_TWIN_DIR="$DIR"
RG=rg-legal-production
CLUSTER=aks-legal-production
now() { date +%s.%N; }

# warm-up, not measured: az's command index, opsh's token
az aks nodepool show -g $RG --cluster-name $CLUSTER -n usernodepool --query properties.count -o tsv >/dev/null 2>&1 \
  || az aks nodepool show -g $RG --cluster-name $CLUSTER -n usernodepool -o none

t0=$(now)
"$OPSH" --env twin -e "
local azure = require('opsh.azure')
for i = 1, $N do azure.aks.pool{pool = 'usernodepool'} end
"
t1=$(now)
i=0
while [ $i -lt "$N" ]; do
  az aks nodepool show -g $RG --cluster-name $CLUSTER -n usernodepool -o none
  i=$((i + 1))
done
t2=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$N" 'BEGIN {
  o = b - a; z = c - b
  printf "opsh (one process): %d reads in %.2f s (%.1f ms each)\n", n, o, o * 1000 / n
  printf "az (%d processes):  %d reads in %.2f s (%.0f ms each)\n", n, n, z, z * 1000 / n
  printf "az / opsh: %.0fx\n", z / o }'
