#!/usr/bin/env bash
# `opsh completion bash|zsh|fish`: the bash script is sourced and its function run as bash runs it
# at a Tab (COMP_LINE, COMP_POINT); the zsh and fish scripts are checked to parse when those shells
# are installed.
set -u
OPSH=$(realpath "${1:?usage: completion_test.sh path/to/opsh}")
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$HERE/fixtures
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HOME=$WORK/home XDG_CONFIG_HOME= OPSH_ENV= NO_COLOR=1
unset OPSH_PATH
mkdir -p "$HOME" "$WORK/bin"
ln -s "$OPSH" "$WORK/bin/opsh"
export PATH=$WORK/bin:$PATH
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else echo "FAIL: $1"; fail=$((fail + 1)); fi; }

"$OPSH" completion bash >"$WORK/opsh.bash"
check "completion bash exits 0 with a script" '[[ -s $WORK/opsh.bash ]]'
# shellcheck disable=SC1091
source "$WORK/opsh.bash"
check "complete -p opsh names the function" '[[ $(complete -p opsh) == "complete -o default -o nosort -F _opsh opsh" ]]'

# tab LINE: run the completion function as bash would with the cursor at the end of LINE
tab() {
  COMP_LINE=$1 COMP_POINT=${#1}
  read -ra COMP_WORDS <<<"$1"
  COMP_CWORD=${#COMP_WORDS[@]}
  _opsh opsh "" ""
  printf '%s\n' "${COMPREPLY[@]}"
}
# offers LINE WORD...: the candidates for LINE include every WORD
offers() {
  local line=$1 got; shift
  got=$(tab "$line")
  for w in "$@"; do
    grep -qxF -- "$w" <<<"$got" || { echo "FAIL: '$line<TAB>' lacks '$w' (got: $(tr '\n' ' ' <<<"$got"))"; fail=$((fail + 1)); return; }
  done
  pass=$((pass + 1))
}
# exactly LINE WORD...: the candidates for LINE are these
exactly() {
  local line=$1 got want; shift
  got=$(tab "$line" | tr '\n' ' ')
  want="$* "
  [[ $got == "$want" ]] && pass=$((pass + 1)) || { echo "FAIL: '$line<TAB>' -> '$got' (want '$want')"; fail=$((fail + 1)); }
}

offers "opsh " run list help repl test env scripts twin version completion new lint lsp-setup
exactly "opsh ru" run
offers "opsh --" --env --output --dry-run --yes --verbose --quiet --no-color --log-format --version
exactly "opsh --dry" --dry-run
exactly "opsh run hel" hello
exactly "opsh --env staging run hel" hello
offers "opsh run hello " --tasks --sleep --env --dry-run
exactly "opsh run hello --ta" --tasks
offers "opsh --env " production staging secondary twin
exactly "opsh --env stag" staging
exactly "opsh --env=stag" staging   # bash replaces what follows the '='
exactly "opsh -o j" json
exactly "opsh --log-format j" json
exactly "opsh env " list show
exactly "opsh env show stag" staging
exactly "opsh scripts " export diff reset
exactly "opsh scripts diff hel" hello
exactly "opsh twin re" reset
exactly "opsh completion " bash zsh fish
offers "opsh help " hello run
exactly "opsh lint hel" hello
exactly "opsh lint hello hel" hello
exactly "opsh lint ./"
# each script's arguments from its declaration: dashes for underscores, --no- for booleans, choices
OPSH_PATH=$FIX exactly "opsh run typed --max" --max-lag
OPSH_PATH=$FIX offers "opsh run typed --" --d --n --l --max-lag --force --no-force
OPSH_PATH=$FIX offers "opsh run " typed hello wipe
exactly "opsh $FIX/scripts/typed.lua --ma" --max-lag
printf 'return {description = "d", categories = {"c"}, args = {tier = {help = "h", choices = {"Basic", "Premium"}}}, run = function() end}\n' >"$WORK/tiers.lua"
exactly "opsh $WORK/tiers.lua --tier " Basic Premium
exactly "opsh $WORK/tiers.lua --tier=P" Premium
# nothing to offer: bash falls back to file names (-o default); a broken script offers nothing
exactly "opsh run nosuch --"
exactly "opsh test "
# the program typed is the one asked: build/opsh completes with itself
COMP_LINE="$OPSH run hel" COMP_POINT=${#COMP_LINE}; _opsh
check "a path to opsh completes with that opsh" '[[ ${COMPREPLY[*]} == hello ]]'
"$OPSH" completion tcsh >/dev/null 2>"$WORK/err"; code=$?
check "an unknown shell is a usage error" '[[ $code -eq 2 ]] && grep -qx "opsh: usage: opsh completion bash|zsh|fish" "$WORK/err"'

# zsh and fish: the scripts parse (the shells are not in Debian's base; skipped without them)
"$OPSH" completion zsh >"$WORK/opsh.zsh"
"$OPSH" completion fish >"$WORK/opsh.fish"
check "zsh script" 'grep -q "compdef _opsh opsh" "$WORK/opsh.zsh"'
check "fish script" 'grep -q "complete -c opsh" "$WORK/opsh.fish"'
if command -v zsh >/dev/null; then
  check "zsh -n parses the zsh script" 'zsh -n "$WORK/opsh.zsh"'
  # _opsh run with the words zsh gives it, compadd and _files standing in for zsh's own
  got=$(zsh -f -c 'autoload -U compinit; compinit -u -D 2>/dev/null; source "$1"
    compadd() { shift $(( ${@[(i)--]} )); print -l -- "$@"; }; _files() { print FILES; }
    words=(opsh run hel); CURRENT=3; _opsh; words=(opsh --env stag); CURRENT=3; _opsh
    words=(opsh test ""); CURRENT=3; _opsh' zsh "$WORK/opsh.zsh" | tr '\n' ' ')
  check "zsh completes names, and file names when opsh offers nothing (got: $got)" '[[ $got == "hello staging FILES " ]]'
else echo "skip: zsh is not installed (zsh -n not run)"; fi
if command -v fish >/dev/null; then
  check "fish --no-execute parses the fish script" 'fish --no-execute "$WORK/opsh.fish"'
  got=$(fish -c 'source $argv[1]; complete -C "opsh run hel"; complete -C "opsh --env stag"; complete -C "opsh run hello --ta"' "$WORK/opsh.fish" | tr '\n' ' ')
  check "fish completes names and arguments (got: $got)" '[[ $got == "hello staging --tasks " ]]'
else echo "skip: fish is not installed (fish --no-execute not run)"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
