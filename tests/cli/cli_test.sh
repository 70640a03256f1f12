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
expect 0 - "" -- "$OPSH" env list
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
expect 0 - "" -- env OPSH_PATH="$FIX" "$OPSH" env list
stdout_has "^plain +$FIX/environments/plain.lua$"
expect 1 1 "^opsh: .*environments/broken.lua: unknown field 'redis.nmae'; did you mean 'redis.name'\?$" -- env OPSH_PATH="$FIX" "$OPSH" --env broken run hello
[[ ! -s $WORK/out ]] && pass=$((pass + 1)) || { echo "FAIL: a run with a broken environment printed output"; fail=$((fail + 1)); }
expect 1 1 "environments/broken.lua: unknown field 'redis.nmae'; did you mean 'redis.name'\?$" -- env OPSH_PATH="$FIX" OPSH_ENV=broken "$OPSH" run typed
expect 2 1 "^opsh: unknown environment 'prod'; did you mean 'production'\?" -- "$OPSH" --env prod run hello

# an encoder that runs out of memory raises a structured error: one line, exit 1, no traceback
if [[ -z ${ASAN_OPTIONS:-} ]]; then   # AddressSanitizer reserves more address space than the limit
  expect 1 1 "^opsh: out of memory encoding JSON \(output reached [0-9]+ bytes\)$" -- bash -c \
    'ulimit -v 250000; exec "$0" -e "local t = {\"xxxxxxxxxxxxxxxx\"} for _ = 1, 40 do t = {t, t} end require(\"opsh.json\").encode(t)"' "$OPSH"
  expect 1 1 "^opsh: out of memory encoding YAML \(output reached [0-9]+ bytes\)$" -- bash -c \
    'ulimit -v 250000; exec "$0" -e "local t = {\"xxxxxxxxxxxxxxxx\"} for _ = 1, 40 do t = {t, t} end require(\"opsh.yaml\").encode(t)"' "$OPSH"
fi

# --version: one line
expect 0 0 "" -- "$OPSH" --version
stdout_has "^opsh 0\.[0-9]+\.[0-9]+$"

# a script run by path: its usage and hints name a command that works
expect 0 0 "" -- "$OPSH" help "$FIX/scripts/typed.lua"
stdout_has "^usage: opsh run $FIX/scripts/typed.lua \["
expect 2 1 "^opsh: typed: unknown argument --bogus \(see 'opsh help $FIX/scripts/typed.lua'\)$" -- "$OPSH" "$FIX/scripts/typed.lua" --bogus
expect 2 1 "see 'opsh help $FIX/scripts/typed.lua'\)$" -- "$OPSH" run "$FIX/scripts/typed.lua" stray
printf 'return {description = "d", categories = {"c"}, args = {need = {help = "h", required = true}}, run = function() end}\n' >"$WORK/needs.lua"
expect 2 1 "^opsh: needs: missing required argument --need \(see 'opsh help $WORK/needs.lua'\)$" -- "$OPSH" "$WORK/needs.lua"
expect 0 0 "" -- "$OPSH" help "$WORK/needs.lua"
# arguments are shown with dashes, as completion offers them (underscores work too)
expect 0 0 "" -- "$OPSH" help "$FIX/scripts/typed.lua"
stdout_has "^usage: opsh run $FIX/scripts/typed.lua .*\[--max-lag=<integer>\]"
stdout_has "^  --max-lag <integer> +declared with an underscore$"
# a syntax error exits 1 with one line, run by path or as a file
printf 'x = = 1\n' >"$WORK/syntax.lua"
expect 1 1 "^opsh: $WORK/syntax.lua:1: unexpected symbol near '='$" -- "$OPSH" run "$WORK/syntax.lua"
expect 1 1 "^opsh: $WORK/syntax.lua:1: unexpected symbol near '='$" -- "$OPSH" "$WORK/syntax.lua"
# a file returning a broken declaration is checked, never a silent exit 0
printf 'return {run = "str"}\n' >"$WORK/str.lua"
expect 1 1 "^opsh: $WORK/str.lua:1: 'run' must be a function, not a string$" -- "$OPSH" "$WORK/str.lua"
printf 'return {description = "d", categories = {"c"}, run = function() print("ran once") end}\n' >"$WORK/decl.lua"
expect 0 0 "" -- "$OPSH" "$WORK/decl.lua"
[[ $(grep -c "ran once" "$WORK/out") -eq 1 ]] && pass=$((pass + 1)) || { echo "FAIL: a declared file ran $(grep -c "ran once" "$WORK/out") times"; fail=$((fail + 1)); }

# a bug inside opsh.parallel: the failing worker's own frames, with or without -v
printf 'local opsh = require("opsh")\nlocal function inner(x) local t = nil; return t.field end\nopsh.parallel({1, 2, 3}, function(i) if i == 2 then inner(i) end return i end)\n' >"$WORK/par.lua"
expect 1 - "^opsh: item 2 \(2\): .*par.lua:2: attempt to index a nil value \(local 't'\)$" -- "$OPSH" "$WORK/par.lua"
grep -qE "par.lua:2: in (upvalue|local|function) 'inner'" "$WORK/err" && pass=$((pass + 1)) || { echo "FAIL: parallel bug without the worker's frames"; cat "$WORK/err"; fail=$((fail + 1)); }
expect 1 - "" -- "$OPSH" -v "$WORK/par.lua"
grep -qE "par.lua:2: in (upvalue|local|function) 'inner'" "$WORK/err" && ! grep -q "lua/opsh/init.lua" "$WORK/err" && pass=$((pass + 1)) || { echo "FAIL: -v parallel traceback is not the worker's"; cat "$WORK/err"; fail=$((fail + 1)); }
# ... a structured error in a worker: one line without -v
printf 'local opsh = require("opsh")\nopsh.parallel({1, 2}, function(i) if i == 2 then opsh.raise("http", "not found", {status = 404}) end end)\n' >"$WORK/par404.lua"
expect 1 1 "^opsh: item 2 \(2\): not found \(status 404\)$" -- "$OPSH" "$WORK/par404.lua"

# opsh.out.print follows -o in ad-hoc files and -e, wherever -o is on the line
printf 'require("opsh").out.print({{b = 1, a = 2}})\n' >"$WORK/print.lua"
expect 0 0 "" -- "$OPSH" -o json "$WORK/print.lua"
stdout_has '^    "a": 2,$'
expect 0 0 "" -- "$OPSH" "$WORK/print.lua" -o tsv
stdout_has "^2	1$"
expect 0 0 "" -- "$OPSH" -o yaml -e 'require("opsh.out").print({x = 1})'
stdout_has "^x: 1$"

# env list: an environment that cannot be loaded is marked; why goes to stderr (a line each: twin and
# twin-secondary), the table stays narrow
expect 0 2 "^opsh: environment 'twin-secondary': the twin is not running in $WORK/notwin" -- env OPSH_TWIN_DIR="$WORK/notwin" "$OPSH" env list
grep -q "^opsh: environment 'twin': the twin is not running in $WORK/notwin" "$WORK/err" && pass=$((pass + 1)) || { echo "FAIL: env list does not say why twin cannot be loaded"; fail=$((fail + 1)); }
stdout_has "^twin +\(cannot be loaded\) +bundled$"
stdout_has "^twin-secondary +\(cannot be loaded\) +bundled$"
[[ $(awk '{ if (length($0) > m) m = length($0) } END { print m }' "$WORK/out") -le 100 ]] && pass=$((pass + 1)) || { echo "FAIL: env list wider than 100 columns"; cat "$WORK/out"; fail=$((fail + 1)); }
expect 0 0 "" -- env OPSH_TWIN_DIR="$WORK/notwin" "$OPSH" -o json env list
stdout_has '"error": "the twin is not running in'

# scripts: export takes no options; diff and reset compare an edited copy with the bundled one
expect 2 1 "^opsh: scripts export: unknown option '--force'" -- "$OPSH" scripts export --force
[[ ! -e --force && ! -e "$HOME/--force" ]] && pass=$((pass + 1)) || { echo "FAIL: a directory named --force"; fail=$((fail + 1)); }
expect 2 1 "^opsh: unknown scripts command 'exprt'" -- "$OPSH" scripts exprt
expect 2 1 "^opsh: scripts diff: 'hello' has no edited copy \(the bundled one runs\)$" -- "$OPSH" scripts diff hello
expect 2 1 "^opsh: scripts diff: unknown script 'helo'; did you mean 'hello'\?$" -- "$OPSH" scripts diff helo
expect 2 1 "is not a bundled script" -- env OPSH_PATH="$FIX" "$OPSH" scripts diff typed
expect 0 0 "" -- "$OPSH" scripts export
expect 0 1 "is the same as the bundled hello$" -- "$OPSH" scripts diff hello
expect 0 1 "nothing to reset" -- "$OPSH" scripts reset hello
sed -i 's/Print opsh/EDITED: print opsh/' "$HOME/.config/opsh/scripts/hello.lua"
expect 0 0 "" -- "$OPSH" scripts diff hello
stdout_has "^--- bundled/hello.lua$"
stdout_has '^\+  description = "EDITED: print opsh'
stdout_has '^-  description = "Print opsh'
expect 0 0 "" -- "$OPSH" scripts reset hello
stdout_has "^hello: the bundled script runs again; your copy is $HOME/.config/opsh/scripts/hello.lua.bak$"
grep -q EDITED "$HOME/.config/opsh/scripts/hello.lua.bak" && pass=$((pass + 1)) || { echo "FAIL: reset lost the edit"; fail=$((fail + 1)); }
expect 0 0 "" -- "$OPSH" list
stdout_has "^  hello +Print opsh's versions.*needs no platform\)$"
rm -rf "$HOME/.config/opsh"

# help for a command: its usage lines; a near miss names a command that works
expect 0 0 "" -- "$OPSH" help run
stdout_has "^usage: opsh run <script\|path> \[--arg=value \.\.\.\]$"
expect 0 0 "" -- "$OPSH" help scripts
stdout_has "^usage: opsh scripts diff\|reset NAME$"
expect 2 1 "^opsh: unknown script or command 'lnt'; did you mean 'lint'\?$" -- "$OPSH" help lnt
expect 0 0 "" -- "$OPSH" help lint

# a declaration typo: the nearest known name and the line, whichever way the script runs
printf -- '-- a typo\nreturn {\n  description = "d",\n  categories = {"c"},\n  flags = {"readonly"},\n  run = function() end,\n}\n' >"$WORK/typo.lua"
expect 1 1 "^opsh: $WORK/typo.lua:5: unknown flag 'readonly'; did you mean 'read-only'\?$" -- "$OPSH" run "$WORK/typo.lua"
expect 1 1 "^opsh: $WORK/typo.lua:5: unknown flag 'readonly'; did you mean 'read-only'\?$" -- "$OPSH" "$WORK/typo.lua"
printf 'return {\n  descripton = "d",\n  run = function() end,\n}\n' >"$WORK/typo2.lua"
expect 1 1 "^opsh: $WORK/typo2.lua:2: unknown field 'descripton' in the declaration; did you mean 'description'\?$" -- "$OPSH" run "$WORK/typo2.lua"
printf 'return {description = "d", categories = {"c"},\n  args = {\n    n = {help = "h"},\n    count = {help = "c",\n      tpye = "integer"},\n    w = {help = "w", type = "duraton"},\n  },\n  run = function() end}\n' >"$WORK/typo3.lua"
expect 1 1 "^opsh: $WORK/typo3.lua:(5: argument 'count': unknown field 'tpye'; did you mean 'type'|6: argument 'w': unknown type 'duraton'; did you mean 'duration')\?$" -- "$OPSH" run "$WORK/typo3.lua"

# opsh lint: the loader's checks, without running the procedure; exit 3 when a declaration is unsound
printf 'return {description = "d", categories = {"c"}, run = function() error("ran") end}\n' >"$WORK/sound.lua"
expect 0 0 "" -- "$OPSH" lint "$WORK/sound.lua" hello
stdout_has "^$WORK/sound.lua: ok$"
stdout_has "^hello: ok$"
expect 3 0 "" -- "$OPSH" lint "$WORK/typo.lua" "$WORK/sound.lua" "$WORK/syntax.lua"
stdout_has "^$WORK/typo.lua:5: unknown flag 'readonly'; did you mean 'read-only'\?$"
stdout_has "^$WORK/syntax.lua:1: unexpected symbol near '='$"
expect 2 1 "^opsh: usage: opsh lint FILE\|NAME \.\.\.$" -- "$OPSH" lint
expect 2 1 "^opsh: lint: unknown script 'helo'; did you mean 'hello'\?$" -- "$OPSH" lint helo
expect 2 1 "^opsh: no such script file: $WORK/none.lua$" -- "$OPSH" lint "$WORK/none.lua"

# opsh new: a procedure and its spec, which passes as written; never overwrites
expect 0 0 "" -- "$OPSH" new dbcheck "$WORK/proj"
stdout_has "^wrote $WORK/proj/scripts/dbcheck.lua$"
stdout_has "^wrote $WORK/proj/tests/dbcheck_spec.lua$"
expect 0 0 "" -- "$OPSH" lint "$WORK/proj/scripts/dbcheck.lua"
expect 0 - "" -- "$OPSH" test "$WORK/proj/tests/dbcheck_spec.lua"
stdout_has "^3 passed, 0 failed$"
expect 0 0 "" -- env OPSH_PATH="$WORK/proj" "$OPSH" -o tsv run dbcheck --target=db --limit=1
stdout_has "^db-1	true$"
expect 2 1 "^opsh: new: $WORK/proj/scripts/dbcheck.lua already exists \(never overwritten\)$" -- "$OPSH" new dbcheck "$WORK/proj"
expect 2 1 "^opsh: new: 'hello' is a bundled script" -- "$OPSH" new hello "$WORK/proj"
expect 2 1 "^opsh: new: '9x' is not a script name" -- "$OPSH" new 9x "$WORK/proj"
expect 0 0 "" -- "$OPSH" new mine
[[ -f $HOME/.config/opsh/scripts/mine.lua && -f $HOME/.config/opsh/tests/mine_spec.lua ]] && pass=$((pass + 1)) || { echo "FAIL: new without DIR"; fail=$((fail + 1)); }
expect 0 0 "" -- "$OPSH" run mine --limit=1
stdout_has "^mine-1 +true$|^web-1 +true$"
rm -rf "$HOME/.config/opsh"

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
