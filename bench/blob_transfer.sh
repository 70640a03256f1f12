#!/usr/bin/env bash
# bench/blob_transfer.sh — upload then download one file of BLOB_BENCH_MB MiB (default 1024) to a
# local Azurite (HTTP, Shared Key, the development account), with opsh (opsh.azure.blob: blocks of
# 32 MiB, 4 in flight, file ranges sent from disk) and with `az storage blob upload/download`, in the
# same run against the same Azurite. Wall time and peak RSS come from /usr/bin/time -v; prints each
# figure and the ratios (opsh / az: time < 1 is faster, memory < 1 is smaller).
# BLOB_BENCH_MD5=0 uploads without opsh's whole-blob Content-MD5 (az computes none either).
# BLOB_BENCH_AZURITE=memory runs Azurite with --inMemoryPersistence: on two cores Azurite writing to
# disk is the upload's limit for both clients, which hides the client's own cost.
# Usage: bench/blob_transfer.sh [path/to/opsh]   (default: build/opsh)
set -euo pipefail
cd "$(dirname "$0")/.."
OPSH=${1:-build/opsh}
MB=${BLOB_BENCH_MB:-1024}

for tool in az python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/blob_transfer.sh: $tool is not installed" >&2; exit 2; }
done
[ -x "$OPSH" ] || { echo "bench/blob_transfer.sh: $OPSH not built" >&2; exit 2; }
export OPSH_PATH=$PWD
azurite=$("$OPSH" -e 'print(require("opsh.twin.component.azurite").binary())')
key=$("$OPSH" -e 'print(require("opsh.twin.component.azurite").account_key)')

dir=$(mktemp -d "${TMPDIR:-/tmp}/blob-bench.XXXXXX")
azurite_pid=
cleanup() {
  if [ -n "$azurite_pid" ]; then kill "$azurite_pid" 2>/dev/null || true; wait "$azurite_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$dir/data"
persistence=(--location "$dir/data")
[ "${BLOB_BENCH_AZURITE:-disk}" = memory ] && persistence=(--inMemoryPersistence)
"$azurite" --blobHost 127.0.0.1 --blobPort "$port" "${persistence[@]}" --silent --skipApiVersionCheck \
  --loose --disableTelemetry >"$dir/azurite.log" 2>&1 &
azurite_pid=$!
for _ in $(seq 200); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
endpoint="http://127.0.0.1:$port/devstoreaccount1"
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=$endpoint;"
export AZURE_CORE_COLLECT_TELEMETRY=false AZURE_CORE_ONLY_SHOW_ERRORS=true

echo "bench/blob_transfer.sh: ${MB} MiB file, Azurite (${BLOB_BENCH_AZURITE:-disk}) at $endpoint, opsh MD5 ${BLOB_BENCH_MD5:-1}"
head -c $((MB * 1024 * 1024)) /dev/urandom > "$dir/src.bin"

cat > "$dir/bench.lua" <<'LUA'
local blob = require("opsh.azure.blob")
local op, endpoint, file, key = arg[1], arg[2], arg[3], os.getenv("BENCH_KEY")
local acct = blob.account{endpoint = endpoint, account = "devstoreaccount1", key = require("opsh").secret(key)}
acct:create_container("bench")
if op == "up" then
  acct:put("bench", "opsh.bin", {file = file, md5 = os.getenv("BLOB_BENCH_MD5") ~= "0"})
else
  acct:get("bench", "opsh.bin", {file = file})
end
LUA
az storage container create -n bench -o none

# measure NAME CMD...: prints "seconds kib cpu_seconds" from /usr/bin/time -v
measure() {
  local log="$dir/time.$1"; shift
  /usr/bin/time -v "$@" >"$log.out" 2>"$log" || { cat "$log.out" "$log" >&2; exit 1; }
  python3 - "$log" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
w = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
s = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)
cpu = sum(float(re.search(r"%s time \(seconds\): ([\d.]+)" % k, t).group(1)) for k in ("User", "System"))
print("%.2f %s %.2f" % (s, rss, cpu))
PY
}

# Azurite's CPU seconds so far (user + system, from /proc): how busy the server was during a transfer
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$azurite_pid/stat"; }
# server_share NAME SECONDS BEFORE: prints Azurite's CPU during that transfer, in cores (1.00 = one core busy)
server_share() { awk -v a="$3" -v b="$(server_cpu)" -v t="$2" -v n="$1" 'BEGIN { printf "  Azurite during %-13s %5.2f cores\n", n, (b - a) / t }' >&2; }

c=$(server_cpu); read -r o_up o_up_rss o_up_cpu < <(BENCH_KEY=$key measure ou "$OPSH" "$dir/bench.lua" up "$endpoint" "$dir/src.bin")
server_share "opsh upload" "$o_up" "$c"
c=$(server_cpu); read -r a_up a_up_rss a_up_cpu < <(measure au az storage blob upload -c bench -n az.bin -f "$dir/src.bin" --overwrite -o none)
server_share "az upload" "$a_up" "$c"
c=$(server_cpu); read -r o_dn o_dn_rss o_dn_cpu < <(BENCH_KEY=$key measure od "$OPSH" "$dir/bench.lua" down "$endpoint" "$dir/opsh.out")
server_share "opsh download" "$o_dn" "$c"
c=$(server_cpu); read -r a_dn a_dn_rss a_dn_cpu < <(measure ad az storage blob download -c bench -n az.bin -f "$dir/az.out" -o none)
server_share "az download" "$a_dn" "$c"

cmp -s "$dir/src.bin" "$dir/opsh.out" || { echo "opsh's download differs from the source" >&2; exit 1; }
cmp -s "$dir/src.bin" "$dir/az.out" || { echo "az's download differs from the source" >&2; exit 1; }

python3 - "$MB" "$o_up" "$o_up_rss" "$o_up_cpu" "$a_up" "$a_up_rss" "$a_up_cpu" "$o_dn" "$o_dn_rss" "$o_dn_cpu" \
  "$a_dn" "$a_dn_rss" "$a_dn_cpu" <<'PY'
import sys
mb = int(sys.argv[1]); v = [float(x) for x in sys.argv[2:]]
for name, (ot, orss, ocpu, at, arss, acpu) in (("upload", v[0:6]), ("download", v[6:12])):
    print(f"{name:8} opsh {ot:7.2f} s {orss/1024:7.1f} MiB RSS {ocpu:6.2f} s CPU ({mb/ot:6.1f} MiB/s) | "
          f"az {at:7.2f} s {arss/1024:7.1f} MiB RSS {acpu:6.2f} s CPU ({mb/at:6.1f} MiB/s) | "
          f"opsh/az time {ot/at:.2f}x (az {at/ot:.1f}x slower), memory {orss/arss:.2f}x, client CPU {ocpu/acpu:.2f}x")
PY
