#!/usr/bin/env bash
# CLI behaviour through the real binary: exit codes, one-line errors, suggestions, lookup order.
set -u
OPSH=$(realpath "${1:?usage: cli_test.sh path/to/opsh}")
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$HERE/fixtures
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HOME=$WORK/home XDG_CONFIG_HOME= OPSH_ENV= NO_COLOR=1
unset OPSH_PATH
mkdir -p "$HOME"
pass=0 fail=0

# expect CODE LINES PATTERN -- command...: exit code, number of stderr lines (or -), stderr pattern (or "")
expect() {
  local code=$1 lines=$2 pattern=$3; shift 4
  "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  local got=$? n
  n=$(wc -l <"$WORK/err")
  if [[ $got -ne $code ]] || { [[ $lines != - ]] && [[ $n -ne $lines ]]; } || { [[ -n $pattern ]] && ! grep -qE -- "$pattern" "$WORK/err"; }; then
    echo "FAIL: $* -> exit $got (want $code), $n stderr line(s) (want $lines), pattern /$pattern/"
    sed 's/^/  stderr: /' "$WORK/err"; sed 's/^/  stdout: /' "$WORK/out" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}
# stdout_has PATTERN: the last command's stdout
stdout_has() {
  if grep -qE -- "$1" "$WORK/out"; then pass=$((pass + 1)); else
    echo "FAIL: stdout lacks /$1/"; sed 's/^/  stdout: /' "$WORK/out" | head -10; fail=$((fail + 1)); fi
}

# usage errors: one line, exit 2
expect 2 1 "^opsh: unknown command 'rnu'; did you mean 'run'\?$" -- "$OPSH" rnu
expect 2 1 "^opsh: unknown script 'helo'; did you mean 'hello'\?$" -- "$OPSH" run helo
expect 2 1 "^opsh: unknown flag '--dryrun'; did you mean '--dry-run'\?$" -- "$OPSH" --dryrun
expect 2 1 "unknown output format 'xml'" -- "$OPSH" -o xml list
expect 2 1 "^opsh: run needs a script name" -- "$OPSH" run
expect 2 1 "hello: --tasks expects an integer, got 'many'" -- "$OPSH" run hello --tasks=many
expect 2 1 "hello: unknown argument --task; did you mean --tasks\?" -- "$OPSH" run hello --task=3
expect 2 1 "hello: unexpected argument 'extra'" -- "$OPSH" run hello extra
expect 2 1 "no command given" -- "$OPSH"
expect 2 1 "^opsh: unknown environment 'prod'; did you mean 'production'\?" -- "$OPSH" --env prod env show
expect 2 1 "^opsh: no environment selected: pass --env NAME or set OPSH_ENV" -- "$OPSH" env show
expect 2 1 "^opsh: \(command line\):1: unexpected symbol" -- "$OPSH" -e 'x ='
expect 2 1 "cannot open nosuch.lua" -- "$OPSH" nosuch.lua

# a failing procedure: exit 1, one line with status and request id, no traceback
expect 1 1 "^opsh: fails: GET .*ResourceGroupNotFound \(status 404, request-id abc-123\)$" \
  -- env OPSH_PATH="$FIX" "$OPSH" run fails
# ... with -v the traceback follows
expect 1 - "stack traceback" -- env OPSH_PATH="$FIX" "$OPSH" -v run fails
# a bug in a script is an internal error: message and traceback, exit 1
expect 1 - "buggy: .*attempt to index a nil value" -- env OPSH_PATH="$FIX" "$OPSH" run buggy
# problems found: exit 3
expect 3 - "2 problem\(s\) found" -- env OPSH_PATH="$FIX" "$OPSH" run finds-problems
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" run finds-problems --count=0
# destructive without a terminal and without --yes: refused, exit 2; --yes or --dry-run go ahead
expect 2 1 "wipe is destructive.*refusing without confirmation \(no terminal\); pass --yes" \
  -- env OPSH_PATH="$FIX" "$OPSH" run wipe
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" run wipe --yes
stdout_has "^wiped \(dry-run: false\)$"
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" --dry-run run wipe
stdout_has "^wiped \(dry-run: true\)$"
# a broken environment names the file and the field
expect 1 1 "environments/broken.lua: unknown field 'redis.nmae'" -- env OPSH_PATH="$FIX" "$OPSH" --env broken env show

# lookup order: an OPSH_PATH copy wins over the bundled one; nothing is loaded from the cwd
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" run hello
stdout_has "^local hello wins$"
mkdir -p "$WORK/cwd/opsh" "$WORK/cwd/scripts"
echo 'error("loaded from the current directory")' >"$WORK/cwd/opsh/out.lua"
echo 'error("loaded from the current directory")' >"$WORK/cwd/opsh.lua"
(cd "$WORK/cwd" && expect 0 0 "" -- "$OPSH" run hello --tasks=2)
stdout_has "^opsh +0\."
# a script file given by path
expect 1 1 "^opsh: fails: " -- "$OPSH" run "$FIX/scripts/fails.lua"

# -e, a plain file with arguments, help, list, version
expect 0 0 "" -- "$OPSH" -e 'local opsh = require("opsh") opsh.sleep(0.01) print(opsh.version)'
stdout_has "^0\."
printf 'print(select("#", ...), table.concat({...}, ","), arg[0] ~= nil)\n' >"$WORK/args.lua"
expect 0 0 "" -- "$OPSH" "$WORK/args.lua" a b
stdout_has "^2	a,b	true$"
expect 0 0 "" -- "$OPSH" help hello
stdout_has "^usage: opsh run hello \[--sleep=<duration>\] \[--tasks=<integer>\]$"
stdout_has "--tasks <integer> +how many tasks to run concurrently \(default 100\)"
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" list
stdout_has "^test:$"
stdout_has "^  wipe +A destructive procedure: asks before it runs  \(local\)$"
expect 0 0 "" -- "$OPSH" version
stdout_has "^lua +Lua 5\.4"

# export the bundled scripts for editing: the edited copy wins, and a second export keeps it
expect 0 0 "" -- "$OPSH" scripts export
stdout_has "^exported [1-9][0-9]* script\(s\) to $HOME/.config/opsh/scripts \(0 kept\)$"
sed -i 's/Print opsh/EDITED: print opsh/' "$HOME/.config/opsh/scripts/hello.lua"
expect 0 0 "" -- "$OPSH" list
stdout_has "^  hello +EDITED: print opsh.*\(local\)$"
expect 0 - "kept .*hello.lua \(already there; an edited copy is never overwritten\)" -- "$OPSH" scripts export
grep -q "EDITED" "$HOME/.config/opsh/scripts/hello.lua" && pass=$((pass + 1)) || { echo "FAIL: export overwrote an edited copy"; fail=$((fail + 1)); }
rm -rf "$HOME/.config/opsh"

# Debian's Lua C modules (not linked against liblua) load into the binary
expect 0 0 "" -- "$OPSH" -e 'print(require("lfs").currentdir() ~= nil)'
stdout_has "^true$"

# libcurl and libpq (and their 30 dependencies) load only when opsh.http / opsh.pg are required
maps='local n = 0 for l in io.lines("/proc/self/maps") do if l:find("libcurl") or l:find("libpq") then n = n + 1 end end print(n)'
expect 0 0 "" -- "$OPSH" -e "$maps"
stdout_has "^0$"
expect 0 0 "" -- "$OPSH" -e "require('opsh.http') require('opsh.pg') $maps"
stdout_has "^[1-9][0-9]*$"

# environments and structured output
expect 0 0 "" -- "$OPSH" --env production env show
stdout_has "^  cluster: aks-legal-production$"
stdout_has "^name: production$"
expect 0 0 "" -- env OPSH_ENV=staging "$OPSH" -o json env show
stdout_has '^  "namespace": "staging",$'
expect 0 0 "" -- "$OPSH" -o json list
stdout_has '"name": "hello"'
expect 0 0 "" -- "$OPSH" -o tsv version
stdout_has "^opsh	0\."
expect 0 0 "" -- "$OPSH" env list
stdout_has "^secondary +Legal platform secondary region"

# output that cannot be written is an error on every way out, never a silent exit 0
# full_stdout CODE LINES PATTERN -- command...: as expect, with stdout on /dev/full
full_stdout() {
  local code=$1 lines=$2 pattern=$3; shift 4
  "$@" >/dev/full 2>"$WORK/err" </dev/null
  local got=$? n
  n=$(wc -l <"$WORK/err")
  if [[ $got -ne $code ]] || { [[ $lines != - ]] && [[ $n -ne $lines ]]; } || ! grep -qE -- "$pattern" "$WORK/err"; then
    echo "FAIL: $* >/dev/full -> exit $got (want $code), $n stderr line(s), pattern /$pattern/"
    sed 's/^/  stderr: /' "$WORK/err"; fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}
full_stdout 1 1 "^opsh: cannot write output: No space left on device$" -- "$OPSH" -o json version
full_stdout 1 1 "^opsh: cannot write output" -- "$OPSH" list
full_stdout 1 1 "^opsh: cannot write output" -- "$OPSH" help hello
full_stdout 1 1 "^opsh: cannot write output" -- "$OPSH" -e 'for _ = 1, 10000 do print("a line of output") end'
full_stdout 1 1 "^opsh: cannot write output" -- "$OPSH" -e 'io.write("x") os.exit(0)'
full_stdout 3 - "^opsh: cannot write output: No space left on device$" -- env OPSH_PATH="$FIX" "$OPSH" run finds-problems

# script arguments: typed strictly, one-line usage errors naming the argument
expect 2 1 "^opsh: typed: --d expects a duration like 90, 1.5s, 1h30m or 2d .*got '1h30'" -- env OPSH_PATH="$FIX" "$OPSH" run typed --d=1h30
expect 2 1 "^opsh: typed: --d expects a duration .*got '30s5m'" -- env OPSH_PATH="$FIX" "$OPSH" run typed --d=30s5m
expect 2 1 "^opsh: typed: --n expects a finite number, got '1e400'" -- env OPSH_PATH="$FIX" "$OPSH" run typed --n=1e400
expect 2 1 "^opsh: typed: unknown argument --bogus \(see 'opsh help typed'\)$" -- env OPSH_PATH="$FIX" "$OPSH" run typed --bogus
expect 2 1 "^opsh: typed: unknown argument --forse; did you mean --force\?$" -- env OPSH_PATH="$FIX" "$OPSH" run typed --forse
expect 2 1 "^opsh: typed: --d given more than once \(only list arguments may repeat\)$" -- env OPSH_PATH="$FIX" "$OPSH" run typed --d=1s --d=2s
expect 2 1 "^opsh: --env given more than once$" -- env OPSH_PATH="$FIX" "$OPSH" --env staging run typed --env production
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" -o json run typed --d=1h30m --l= --max-lag=5 --no-force
stdout_has '^  "d": 5400,$'
stdout_has '^  "l": \[\],$'
stdout_has '^  "max_lag": 5$'
stdout_has '^  "force": false,$'
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" -o json run typed --l=a --l b,c
stdout_has '^    "c"$'

# environments: a valid one without a description lists as such; a broken one stops a run before it starts
expect 0 0 "" -- env OPSH_PATH="$FIX" "$OPSH" env list
stdout_has "^plain +$FIX/environments/plain.lua$"
expect 1 1 "^opsh: .*environments/broken.lua: unknown field 'redis.nmae'$" -- env OPSH_PATH="$FIX" "$OPSH" --env broken run hello
[[ ! -s $WORK/out ]] && pass=$((pass + 1)) || { echo "FAIL: a run with a broken environment printed output"; fail=$((fail + 1)); }
expect 1 1 "environments/broken.lua: unknown field 'redis.nmae'$" -- env OPSH_PATH="$FIX" OPSH_ENV=broken "$OPSH" run typed
expect 2 1 "^opsh: unknown environment 'prod'; did you mean 'production'\?" -- "$OPSH" --env prod run hello

# an encoder that runs out of memory raises a structured error: one line, exit 1, no traceback
if [[ -z ${ASAN_OPTIONS:-} ]]; then   # AddressSanitizer reserves more address space than the limit
  expect 1 1 "^opsh: out of memory encoding JSON \(output reached [0-9]+ bytes\)$" -- bash -c \
    'ulimit -v 250000; exec "$0" -e "local t = {\"xxxxxxxxxxxxxxxx\"} for _ = 1, 40 do t = {t, t} end require(\"opsh.json\").encode(t)"' "$OPSH"
  expect 1 1 "^opsh: out of memory encoding YAML \(output reached [0-9]+ bytes\)$" -- bash -c \
    'ulimit -v 250000; exec "$0" -e "local t = {\"xxxxxxxxxxxxxxxx\"} for _ = 1, 40 do t = {t, t} end require(\"opsh.yaml\").encode(t)"' "$OPSH"
fi

# Ctrl-C: the running procedure is cancelled, its cleanups run, exit 130
"$OPSH" -e 'local _ <close> = setmetatable({}, {__close = function() io.stderr:write("cleaned up\n") end})
            require("opsh").sleep(30)' >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 50); do sleep 0.05; done
kill -INT $pid; wait $pid; code=$?
if [[ $code -eq 130 ]] && grep -q "cleaned up" "$WORK/err" && grep -q "interrupted" "$WORK/err"; then
  pass=$((pass + 1)); else echo "FAIL: SIGINT -> exit $code"; cat "$WORK/err"; fail=$((fail + 1)); fi
# ... even when it is busy in pure Lua
"$OPSH" -e 'while true do end' >"$WORK/out" 2>"$WORK/err" &
pid=$!
sleep 0.3
kill -INT $pid; wait $pid; code=$?
if [[ $code -eq 130 ]]; then pass=$((pass + 1)); else echo "FAIL: SIGINT busy -> exit $code"; cat "$WORK/err"; fail=$((fail + 1)); fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
