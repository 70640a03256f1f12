#!/usr/bin/env bash
# A wrong argument reaching C is a usage error: exit status 2 and one line on stderr, no traceback.
set -u
OPSH=${1:?usage: usage_test.sh path/to/opsh}
fail=0
check() {   # check CHUNK PATTERN
  local err code
  err=$(HOME=$(mktemp -d) "$OPSH" -e "$1" 2>&1 >/dev/null </dev/null)
  code=$?
  if [[ $code -ne 2 || $(wc -l <<<"$err") -ne 1 || ! $err =~ $2 ]]; then
    echo "FAIL: opsh -e '$1' -> exit $code (want 2), stderr:"
    sed 's/^/  /' <<<"$err"
    fail=1
  fi
}
check 'require("opsh._yaml").decode({})' "bad argument #1 to 'decode' \(string expected, got table\)"
check 'require("opsh._json").decode({})' "bad argument #1 to 'decode' \(string expected, got table\)"
check 'require("opsh._crypto").digest("md4", "x")' "bad argument #1 to 'digest' \(invalid option 'md4'\)"
check 'require("opsh._crypto").constant_time_equal("a", 5)' "secret or string expected, got number"
check 'require("opsh._server").listen{port = "x"}' "option 'port' must be a number"
check 'require("opsh._proc").spawn{argv = {"true"}, timeout = -1}' "must not be negative"
[[ $fail == 0 ]] && echo "ok"
exit $fail
