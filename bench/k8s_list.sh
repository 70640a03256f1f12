#!/usr/bin/env bash
# bench/k8s_list.sh [opsh]: opsh.k8s against kubectl on the same Kubernetes twin, in the same run.
#   1. list 10,000 pods (+ the seeded ones): opsh's iterator (c:iter, a page of 500 at a time) and
#      full list (c:list) against `kubectl get pods -o json`: wall time and peak RSS (/usr/bin/time),
#      ROUNDS alternating rounds (default 3), medians.
#   2. 500 single-pod GETs: one opsh process, concurrency 50 (opsh.parallel), against 500 kubectl
#      invocations run 50 at a time (xargs -P 50); both with a warm discovery cache.
# Starts a twin of its own (CA + API process) in a temporary directory and stops it at the end; when
# the twin is not there (or SOURCE=fake), bench/k8s/fake_api.lua serves the pods instead.
set -euo pipefail
OPSH=$(realpath "${1:-build/opsh}")
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PODS=${PODS:-10000}
NS=production
T=$(mktemp -d /tmp/opsh-bench-k8s.XXXXXX)
FAKE=
cleanup() {
  [ -n "$FAKE" ] && kill "$FAKE" 2>/dev/null
  [ -d "$T/twin" ] && "$OPSH" twin down --dir "$T/twin" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

export HOME="$T/home" KUBECACHEDIR="$T/kubecache" XDG_CACHE_HOME="$T/cache"
mkdir -p "$HOME"
if [ "${SOURCE:-auto}" != fake ] && "$OPSH" -e "require('opsh.twin.k8s')" >/dev/null 2>&1; then
  echo "server: the Kubernetes twin (knob extra_pods = $PODS)"
  "$OPSH" twin up --dir "$T/twin" --without postgres,redis,azurite,registry >/dev/null
  "$OPSH" -e "require('opsh.twin').client('$T/twin'):put('k8s.knobs', 'all', {extra_pods = $PODS})"
  eval "$("$OPSH" twin env --shell --dir "$T/twin")"
  export KUBECONFIG
  for _ in $(seq 600); do
    n=$(kubectl get pods -n "$NS" -l app=load -o name 2>/dev/null | wc -l)
    [ "$n" -ge "$PODS" ] && break
    sleep 0.5
  done
else
  echo "server: bench/k8s/fake_api.lua (an opsh.server API with $PODS pods)"
  "$OPSH" bench/k8s/fake_api.lua "$T" "$PODS" > "$T/fake.log" 2>&1 &
  FAKE=$!
  for _ in $(seq 300); do [ -f "$T/ready" ] && break; sleep 0.1; done
  [ -f "$T/ready" ] || { cat "$T/fake.log"; exit 1; }
  export KUBECONFIG="$T/kubeconfig"
fi

kubectl get pods -n "$NS" -o name > "$T/all"
sed -n '1,500s|^pod/||p' "$T/all" > "$T/names"
total=$(wc -l < "$T/all")
echo "pods in $NS: $total; rounds: $ROUNDS"

measure() { # label command... -> appends "wall rss" to $T/<label>
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$T/time.$label" "$@" > "$T/out.$label"
  cat "$T/time.$label" >> "$T/$label"
}

ITER="local c = require('opsh.k8s').client{namespace = '$NS'}
local n = 0
for _ in c:iter('pods') do n = n + 1 end
print(n)"
FULL="local c = require('opsh.k8s').client{namespace = '$NS'}
print(#c:list('pods').items)"
GETS="local opsh = require('opsh')
local c = require('opsh.k8s').client{namespace = '$NS'}
local names = {}
for l in io.lines('$T/names') do names[#names + 1] = l end
local got = opsh.parallel(names, function(n) return c:get('pods', n).metadata.name end, {limit = 50})
print(#got)"

"$OPSH" -e "$FULL" >/dev/null              # warm discovery caches, both sides
kubectl get pods -n "$NS" -o name >/dev/null
for _ in $(seq "$ROUNDS"); do
  measure kubectl_list kubectl get pods -n "$NS" -o json
  measure opsh_iter "$OPSH" -e "$ITER"
  measure opsh_list "$OPSH" -e "$FULL"
  measure kubectl_gets sh -c "xargs -P 50 -I{} kubectl get pod -n $NS {} -o json < $T/names > /dev/null"
  measure opsh_gets "$OPSH" -e "$GETS"
done
[ "$(cat "$T/out.opsh_iter")" = "$total" ] || { echo "opsh iterator saw $(cat "$T/out.opsh_iter") pods, not $total"; exit 1; }
[ "$(cat "$T/out.opsh_list")" = "$total" ] || { echo "opsh list saw $(cat "$T/out.opsh_list") pods"; exit 1; }
[ "$(cat "$T/out.opsh_gets")" = "500" ] || { echo "opsh gets: $(cat "$T/out.opsh_gets")"; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { awk '{print $1}' "$T/$1" | median; }
rss() { awk '{print $2}' "$T/$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '%-34s %9s %12s %10s %10s\n' "" "wall s" "peak RSS MB" "wall/kc" "rss/kc"
for x in kubectl_list opsh_iter opsh_list; do
  printf '%-34s %9s %12d %10s %10s\n' "list $total pods: $x" "$(wall $x)" "$(( $(rss $x) / 1024 ))" \
    "$(ratio "$(wall $x)" "$(wall kubectl_list)")" "$(ratio "$(rss $x)" "$(rss kubectl_list)")"
done
for x in kubectl_gets opsh_gets; do
  printf '%-34s %9s %12d %10s\n' "500 GETs, 50 at a time: $x" "$(wall $x)" "$(( $(rss $x) / 1024 ))" \
    "$(ratio "$(wall $x)" "$(wall kubectl_gets)")"
done
