#!/usr/bin/env bash
# daily-health-check: opsh's procedure vs the runbook's bash health check (the same seven az/kubectl
# commands, one after another, as scripts/daily-health-check.sh in the runbook runs them), against the
# same running twin, in the same run. Needs `opsh twin up`. Prints wall times and the ratio.
#   bench/health_check.sh [build/opsh] [runs]
# Without a running twin (OPSH_TWIN_DIR or the default one) it starts its own in a temp dir and stops it.
set -euo pipefail
OPSH=$(realpath "${1:-build/opsh}")
RUNS=${2:-3}
OWN_TWIN=
cleanup() {
  [[ -n $OWN_TWIN ]] && { "$OPSH" twin down --dir "$OWN_TWIN" >/dev/null 2>&1 || true; rm -rf "$OWN_TWIN"; }
  rm -rf "${BENCH_TMP_HOME:-}"
}
trap cleanup EXIT
if ! "$OPSH" twin status >/dev/null 2>&1; then
  OWN_TWIN=$(mktemp -d); export OPSH_TWIN_DIR=$OWN_TWIN
  "$OPSH" twin up --without azurite,registry >/dev/null
fi
eval "$("$OPSH" twin env --shell)"
BENCH_TMP_HOME=$(mktemp -d)
export HOME=${BENCH_HOME:-$BENCH_TMP_HOME}    # kubectl's discovery cache and az's files: a fresh, private HOME
cp -r "$AZURE_CONFIG_DIR" "$HOME/azure" && export AZURE_CONFIG_DIR="$HOME/azure"

# The runbook's seven checks. `az monitor app-insights query` lives in an az extension that cannot be
# installed here; `az rest` sends the same query to the same API (docs/twin-azure.md).
runbook_bash() {
  az aks show --resource-group rg-legal-production --name aks-legal-production \
    --query "{Status:provisioningState, Nodes:agentPoolProfiles[0].count}" --output table
  kubectl get pods -n production --no-headers | awk '{print $3}' | sort | uniq -c
  kubectl top nodes
  kubectl top pods -n production --sort-by=cpu | head -5
  az postgres flexible-server show --resource-group rg-legal-production --name psql-legal-production \
    --query "{State:state, Storage:storageProfile.storageMB}" --output table
  if [[ -n ${OPSH_APPINSIGHTS_ENDPOINT:-} ]]; then   # the App Insights twin (h-query); opsh reports it unavailable too
    az rest --method post --resource https://api.applicationinsights.io \
      --url "$OPSH_APPINSIGHTS_ENDPOINT/v1/apps/legal-platform-production/query" \
      --body '{"query": "exceptions | where timestamp > ago(24h) | summarize count() by type"}'
  fi
  kubectl get certificate -n production
  kubectl get hpa -n production
}

now() { date +%s.%N; }
best_bash=999999; best_opsh=999999
for ((i = 0; i < RUNS; i++)); do
  t0=$(now); runbook_bash >/dev/null 2>&1 || { echo "runbook bash check failed:" >&2; runbook_bash >&2; exit 1; }
  t1=$(now); "$OPSH" --env twin run daily-health-check -o json >/dev/null || [[ $? == 3 ]]
  t2=$(now)
  b=$(echo "$t1 - $t0" | bc -l); o=$(echo "$t2 - $t1" | bc -l)
  (( $(echo "$b < $best_bash" | bc -l) )) && best_bash=$b
  (( $(echo "$o < $best_opsh" | bc -l) )) && best_opsh=$o
done
printf '%-34s %8.2f s\n' "runbook bash (az + kubectl)" "$best_bash" "opsh run daily-health-check" "$best_opsh"
printf 'opsh is %.1fx faster (target: >= 20x), best of %d runs each\n' "$(echo "$best_bash / $best_opsh" | bc -l)" "$RUNS"
