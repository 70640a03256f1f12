#!/usr/bin/env bash
# Start-up: the binary links only what every run needs (Lua, libuv, libc). OpenSSL, hiredis,
# http-parser (modules built as shared objects), libyaml, libedit, libcurl and libpq (dlopen
# tables) are loaded on first require; `opsh version` still names them all.
set -u
OPSH=${1:?usage: needed_test.sh path/to/opsh}
needed=$(readelf -d "$OPSH" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
fail=0
for lib in libcrypto libssl libyaml libhiredis libedit libhttp_parser libcurl libpq; do
  if grep -q "^$lib[.-]" <<<"$needed"; then echo "FAIL: $OPSH links $lib at start-up"; fail=1; fi
done
versions=$("$OPSH" version) || { echo "FAIL: opsh version exits $?"; exit 1; }
for component in opsh lua libuv libcurl openssl libpq hiredis libyaml; do
  grep -q "^$component " <<<"$versions" || { echo "FAIL: opsh version lost $component"; fail=1; }
done
# A required module still loads (and its library with it)
"$OPSH" -e 'assert(require("opsh._crypto").openssl_version); assert(require("opsh._server"))' ||
  { echo "FAIL: a module loaded on first require did not load"; fail=1; }
[[ $fail == 0 ]] && echo "ok: NEEDED = $(tr '\n' ' ' <<<"$needed")"
exit $fail
