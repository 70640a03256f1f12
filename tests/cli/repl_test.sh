#!/usr/bin/env bash
# The REPL driven through a real pseudo-terminal: tmux (private server, temporary HOME) types
# into `opsh repl`; capture-pane is polled with a deadline for what the screen must show.
# usage: repl_test.sh /path/to/opsh
set -u
OPSH=$(realpath "${1:?usage: repl_test.sh OPSH_BINARY}")
command -v tmux >/dev/null || { echo "FAIL: tmux is not installed (deploy/packages.txt)"; exit 1; }

WORK=$(mktemp -d)
SOCK="opsh-repl-test-$$"
TMUX_CMD=(tmux -L "$SOCK" -f /dev/null)
cleanup() { "${TMUX_CMD[@]}" kill-server >/dev/null 2>&1; rm -rf "$WORK"; }
trap cleanup EXIT

PASSED=0
SESSION=""

pane() { "${TMUX_CMD[@]}" capture-pane -p -J -S -3000 -t "$SESSION" 2>/dev/null; }

fail() {
  echo "FAIL: $*"
  echo "---- screen ----"
  pane
  echo "----------------"
  exit 1
}

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }

# wait_for REGEX [COUNT] [SECONDS]: until the screen has COUNT lines matching REGEX
wait_for() {
  local re=$1 want=${2:-1} secs=${3:-10}
  local deadline=$(( $(date +%s) + secs ))
  while :; do
    local n
    n=$(pane | grep -cE -- "$re")
    [ "$n" -ge "$want" ] && return 0
    [ "$(date +%s)" -ge "$deadline" ] && fail "timed out waiting for /$re/ (x$want)"
    sleep 0.05
  done
}

count() { pane | grep -cE -- "$1"; }

# prompt: until the screen ends with an empty prompt, so keys typed next land after it (a line sent just
# before may still be running, and keys typed then are echoed before the prompt is drawn)
prompt() {
  local deadline=$(( $(date +%s) + 10 ))
  until pane | grep -v '^$' | tail -n 1 | grep -qE '^opsh> ?$'; do
    [ "$(date +%s)" -ge "$deadline" ] && fail "timed out waiting for an empty prompt"
    sleep 0.05
  done
}

type_text() { "${TMUX_CMD[@]}" send-keys -t "$SESSION" -l -- "$1"; }
key() { "${TMUX_CMD[@]}" send-keys -t "$SESSION" "$@"; }
line() { type_text "$1"; key Enter; }

# start NAME ENV... -- ARGS...: a session running opsh; its exit status lands in $WORK/NAME.status
start() {
  SESSION=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local cmd
  cmd=$(printf '%q ' env -u XDG_STATE_HOME -u OPSH_HISTFILE -u OPSH_ENV -u NO_COLOR "${envs[@]}" \
    TERM=screen "$OPSH" "$@")
  "${TMUX_CMD[@]}" new-session -d -s "$SESSION" -x 120 -y 40 \
    "$cmd; echo \$? > $WORK/$SESSION.status; sleep 600"
  wait_for '^opsh> ' 1 10
}

wait_exit() {
  local deadline=$(( $(date +%s) + ${1:-10} ))
  while [ ! -s "$WORK/$SESSION.status" ]; do
    [ "$(date +%s)" -ge "$deadline" ] && fail "opsh did not exit"
    sleep 0.05
  done
  cat "$WORK/$SESSION.status"
}

HOME1="$WORK/home"
mkdir -p "$HOME1"

# ---------------------------------------------------------------------------------------------
start s1 HOME="$HOME1" -- repl

line '40 + 2'
wait_for '^42$'
ok "an expression prints its value"

line '=1000+1'
wait_for '^1001$'
ok "=expr prints its value"

line 'function add(a,'
wait_for '^>> $'
line 'b)'
line 'return a + b end'
line '=add(300, 33)'
wait_for '^333$'
ok "a function definition across lines (continuation prompt >>)"

type_text 'opsh.sp'
key Tab
wait_for '^opsh> opsh\.spawn$'
key C-u
ok "opsh.sp<TAB> completes to opsh.spawn"

line 'cfg = {database = {hostname = "db1", port = 5432}}'
prompt
type_text 'cfg.database.ho'
key Tab
wait_for '^opsh> cfg\.database\.hostname$'
key Enter
wait_for '^"db1"$'
ok "a dotted field completes (cfg.database.ho<TAB>)"

line 's = "abc"'
prompt
type_text 's:up'
key Tab
wait_for '^opsh> s:upper$'
type_text '()'
key Enter
wait_for '^"ABC"$'
ok "a method completes through the string metatable (s:up<TAB>)"

line 'opsh.sleep(0.1) return 4242'
wait_for '^4242$'
ok "an async call at the prompt"

line '={{name = "web", replicas = 3}, {name = "worker", replicas = 10}}'
wait_for '^NAME +REPLICAS$'
wait_for '^worker +10$'
ok "a list of records prints as a table"

line 'error("boom")'
wait_for '^error: repl:1: boom$'
line 'opsh.raise("http", "not found", {status = 404})'
wait_for '^error: not found \(status 404\)$'
ok "errors print one line"

line 't = opsh.spawn(function() opsh.sleep(0.5) print("bg-" .. "done") end)'
prompt
type_text 'half'
wait_for '^bg-done$' 1 10
wait_for '^opsh> half$'
key C-u
line '=t:status()'
wait_for '^"done"$'
ok "a background task runs while the prompt waits; the prompt is redrawn under its output"

line 'do local c <close> = setmetatable({}, {__close = function() print("closed-" .. "ran") end}) print("sleep" .. "ing") opsh.sleep(100) end'
wait_for '^sleeping$'
key C-c
wait_for '^(\^C)?closed-ran$'
wait_for '^interrupted$' 1
line '=7*6*10'
wait_for '^420$'
ok "Ctrl-C cancels opsh.sleep(100), runs its <close> variables; the REPL answers"

line 'print("spin" .. "ning") while true do end'
wait_for '^spinning$'
key C-c
wait_for '^interrupted$' 2
line '=5*5*5'
wait_for '^125$'
ok "Ctrl-C interrupts a CPU-bound line (while true do end); the REPL answers"

type_text 'half typed'
wait_for '^opsh> half typed$'   # read by the editor: a Ctrl-C also flushes unread input
key C-c
wait_for '^opsh> half typed\^C$'
key C-c
key C-c
line '=2*3*37'
wait_for '^222$'
ok "Ctrl-C at the prompt clears the line; repeated, it does not exit"

line 'local n = 0; function inc() n = n + 1 end'
line 'inc()'
line 'inc()'
line '=n * 1000 + 7'
wait_for '^2007$'
ok "a chunk-level local survives its line; a function that captured it updates it"

line 'local function sq(x)'
wait_for '^>> $'
line 'return x * x end'
line '=sq(12) + 1000'
wait_for '^1144$'
ok "a pasted local function is there on the next lines"

line '=6 * 7 * 11'
wait_for '^462$'
line '=_ + 1'
wait_for '^463$'
ok "_ is the last value printed"

line '?opsh.sleep'
wait_for '^opsh\.sleep\(seconds: number\)$'
wait_for '^Suspend the current task for `seconds` \(math\.huge: until it is cancelled\)\.$'
ok "?x shows the signature and the doc line"

line '=opsh.pg.connect'
wait_for '^function opsh\.pg\.connect\(target\?, overrides\?\)$'
ok "an opsh function prints with its signature"

line 'help(opsh.spawn)'
wait_for '^opsh\.spawn\(fn, \.\.\.\) -> opsh\.task$'
line 'function add2(a, b) return a + b end'
line '=add2'
wait_for '^function\(a, b\) at repl:1$'
ok "help(x) as ?x; a function typed at the prompt prints with its parameters"

line 'tk = {foo_key = 8181, ["with space"] = 8282}'
prompt
type_text 'tk["foo'
key Tab
wait_for '^opsh> tk\["foo_key"\]$'
key Enter
wait_for '^8181$'
type_text 'tk["with s'
key Tab
wait_for '^opsh> tk\["with space"\]$'
key Enter
wait_for '^8282$'
ok "a table key completes after [\" (tk[\"foo<TAB>, a key with a space)"

line 'local ls = "xyz"'
prompt
type_text 'ls:up'
key Tab
wait_for '^opsh> ls:upper$'
type_text '()'
key Enter
wait_for '^"XYZ"$'
type_text '("q"):rev'
key Tab
wait_for '^opsh> \("q"\):reverse$'
key C-u
ok "string methods complete on a local string and after a string literal"

line '={{zeta = 1, blob_path = "x"}, columns = {"zeta", "blob_path"}}'
wait_for '^zeta +blob_path$'
wait_for '^1 +x$'
ok "a result with columns prints in its column order with its own names"

line 'pw = opsh.secret("hunter2")'
line '=pw'
wait_for '^<redacted>$'
ok "a secret prints <redacted>"

key C-d
[ "$(wait_exit)" = "0" ] || fail "Ctrl-D: exit status $(cat "$WORK/s1.status")"
ok "Ctrl-D on an empty line exits with status 0"

HIST="$HOME1/.local/state/opsh/history"
[ -f "$HIST" ] || fail "no history file at $HIST"
[ "$(stat -c %a "$HIST")" = "600" ] || fail "history mode $(stat -c %a "$HIST"), want 600"
[ "$(stat -c %a "$HOME1/.local/state/opsh")" = "700" ] || fail "history directory not private"
grep -qx '=1000+1' "$HIST" || fail "history lacks =1000+1"
grep -qx 'function add(a,\\nb)\\nreturn a + b end' "$HIST" || fail "history lacks the multi-line chunk"
! grep -q 'hunter2' "$HIST" || fail "a line with a secret reached the history file"
ok "history written with mode 0600, without the secret line"

# ---------------------------------------------------------------------------------------------
# no arguments on a terminal: the REPL; history from the last session is there (up arrow)
start s2 HOME="$HOME1" --
key Up
wait_for '^opsh> =pw$'
key C-u
key C-d
[ "$(wait_exit)" = "0" ] || fail "s2 exit status"
ok "opsh with no arguments on a terminal starts the REPL, with the saved history"

# XDG_STATE_HOME is respected
start s3 HOME="$HOME1" XDG_STATE_HOME="$WORK/xdg" -- repl
line '=31*3'
wait_for '^93$'
key C-d
wait_exit >/dev/null
grep -qx '=31\*3' "$WORK/xdg/opsh/history" || fail "no history under XDG_STATE_HOME"
! grep -q '31\*3' "$HIST" || fail "history went to ~/.local/state despite XDG_STATE_HOME"
ok "XDG_STATE_HOME is respected"

# ---------------------------------------------------------------------------------------------
# without a terminal: lines from stdin, no prompt, no history; a pipe and a regular file
printf '=1+1\nerror("boom")\nfunction f(a,\nb) return a * b end\n=f(6, 7)\nopsh.sleep(0.05) return "slept"\nlocal k = 5\n=k * 2\n=_ + 1\n' \
  > "$WORK/input.lua"
for how in pipe file; do
  if [ $how = pipe ]; then
    cat "$WORK/input.lua" | env HOME="$HOME1" "$OPSH" repl > "$WORK/out" 2> "$WORK/err"
  else
    env HOME="$HOME1" "$OPSH" repl < "$WORK/input.lua" > "$WORK/out" 2> "$WORK/err"
  fi
  status=$?
  [ $status = 0 ] || fail "non-terminal REPL ($how): status $status"
  [ "$(cat "$WORK/out")" = "$(printf '2\n42\n"slept"\n10\n11')" ] || fail "non-terminal REPL ($how) printed: $(cat "$WORK/out")"
  [ "$(cat "$WORK/err")" = 'error: repl:1: boom' ] || fail "non-terminal REPL ($how) errors: $(cat "$WORK/err")"
  ok "without a terminal ($how): values on stdout, one-line errors on stderr, status 0"
done
! grep -q 'slept' "$HIST" || fail "a non-terminal session wrote history"

echo "$PASSED passed, 0 failed"
