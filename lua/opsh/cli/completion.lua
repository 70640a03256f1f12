-- opsh.cli.completion: `opsh completion bash|zsh|fish` prints a shell script; the script asks
-- `opsh __complete WORDS... CURRENT` at each Tab, so script names, their arguments (from their
-- declarations) and environment names are always those of this opsh and these roots.
local script = require("opsh.script")

local M = {}

local subcommands = {
  env = {"list", "show"},
  scripts = {"export", "diff", "reset"},
  twin = {"up", "status", "down", "reset", "env"},
  completion = {"bash", "zsh", "fish"},
}

local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function script_names() return sorted_keys(script.all()) end
local function env_names() return sorted_keys(require("opsh.env").list()) end

-- the values a global flag takes
local function flag_values(key)
  if key == "env" then return env_names() end
  if key == "output" then return {"table", "json", "yaml", "tsv"} end
  if key == "log_format" then return {"human", "json"} end
  return {}
end

local function long_global_flags(cli)
  local list = {}
  for f in pairs(cli.global_flags) do if f:sub(1, 2) == "--" then list[#list + 1] = f end end
  for f in pairs(cli.global_switches) do if f:sub(1, 2) == "--" then list[#list + 1] = f end end
  table.sort(list)
  return list
end

-- a script's declaration, or nil when it cannot be loaded (completion never fails)
local function declaration(ref)
  local ok, decl = pcall(script.load, ref)
  return ok and decl or nil
end

-- the values a script argument takes, when they are few
local function arg_values(spec)
  if spec.choices then
    local list = {}
    for _, c in ipairs(spec.choices) do list[#list + 1] = tostring(c) end
    return list
  end
  if spec.type == "boolean" then return {"true", "false"} end
  return {}
end

local function script_flags(decl, cli)
  local list = {}
  for _, name in ipairs(sorted_keys(decl.args)) do
    local spelled = name:gsub("_", "-")
    list[#list + 1] = "--" .. spelled
    if decl.args[name].type == "boolean" then list[#list + 1] = "--no-" .. spelled end
  end
  for _, f in ipairs(long_global_flags(cli)) do list[#list + 1] = f end
  return list
end

--- candidates(words) -> list: what may replace the last word (the one under the cursor, maybe
-- empty), given the words before it (without the program name).
function M.candidates(words)
  local cli = require("opsh.cli")
  local cur = words[#words] or ""
  local before = {}
  for i = 1, #words - 1 do before[i] = words[i] end

  -- the words before the cursor, past the global flags and their values
  local rest, i = {}, 1
  while i <= #before do
    local w = before[i]
    local assigned = w:match("^(%-%-?[%w-]+)=")
    if cli.global_flags[w] then
      i = i + 1
    elseif not cli.global_switches[w] and not (assigned and cli.global_flags[assigned]) then
      rest[#rest + 1] = w
    end
    i = i + 1
  end

  -- a value for the flag just before, or after `--flag=`
  local prev = before[#before]
  if prev and cli.global_flags[prev] then return flag_values(cli.global_flags[prev]) end
  local flag = cur:match("^(%-%-?[%w-]+)=")
  if flag and cli.global_flags[flag] then
    local list = {}
    for _, v in ipairs(flag_values(cli.global_flags[flag])) do list[#list + 1] = flag .. "=" .. v end
    return list
  end

  local cmd = rest[1]
  if cmd == nil then
    if cur:sub(1, 1) == "-" then return long_global_flags(cli) end
    local list = {}
    for _, c in ipairs(cli.commands) do list[#list + 1] = c end
    table.sort(list)
    return list
  end

  -- a procedure: `run NAME ...` or a file that declares one
  local ref
  if cmd == "run" then
    if #rest == 1 then return script_names() end
    ref = rest[2]
  elseif script.is_path(cmd) then
    ref = cmd
  end
  if ref then
    local decl = declaration(ref)
    if not decl then return {} end
    local given = prev and prev:match("^%-%-([%w_-]+)$")
    local name = given and script.arg_name(decl, given)
    if name and #rest > (cmd == "run" and 2 or 1) and decl.args[name].type ~= "boolean" then
      return arg_values(decl.args[name])
    end
    if flag then
      local n = script.arg_name(decl, flag:sub(3))
      local list = {}
      if n then for _, v in ipairs(arg_values(decl.args[n])) do list[#list + 1] = flag .. "=" .. v end end
      return list
    end
    return script_flags(decl, cli)
  end

  if #rest == 1 then
    if cmd == "help" then
      local list = script_names()
      for _, c in ipairs(cli.commands) do list[#list + 1] = c end
      return list
    end
    if cur:sub(1, 1) == "-" then return long_global_flags(cli) end
    if cmd == "lint" and not cur:find("[/.]") then return script_names() end
    return subcommands[cmd] or {}
  end
  if cmd == "lint" and not cur:find("[/.]") then return script_names() end   -- a path: file names
  if cmd == "env" and rest[2] == "show" and #rest == 2 then return env_names() end
  if cmd == "scripts" and (rest[2] == "diff" or rest[2] == "reset") and #rest == 2 then
    local list = {}
    for _, n in ipairs(require("opsh.runtime").embedded("script:")) do list[#list + 1] = n end
    table.sort(list)
    return list
  end
  if cur:sub(1, 1) == "-" then return long_global_flags(cli) end
  return {}
end

--- opsh __complete WORDS... CURRENT: the candidates that start with CURRENT, one a line.
function M.complete(words)
  local cur = words[#words] or ""
  for _, c in ipairs(M.candidates(words)) do
    if c:sub(1, #cur) == cur then io.stdout:write(c, "\n") end
  end
  return 0
end

-- The scripts: each passes the words up to the cursor to `opsh __complete` (the opsh that was
-- typed: `build/opsh` completes with itself) and falls back to file names when it offers nothing.
M.scripts = {}

M.scripts.bash = [==[
# opsh completion for bash: source <(opsh completion bash)
_opsh() {
  local line=${COMP_LINE:0:COMP_POINT} words cur
  read -ra words <<<"$line"
  if [[ $line =~ [[:space:]]$ || ${#words[@]} -eq 0 ]]; then words+=(""); fi
  cur=${words[${#words[@]}-1]}
  local IFS=$'\n' prog=${words[0]:-opsh}
  [[ $prog == */* ]] || prog=$(type -P "$prog" 2>/dev/null || echo opsh)
  COMPREPLY=($("${prog/#\~/$HOME}" __complete "${words[@]:1}" 2>/dev/null))
  # bash splits words at '=': what it replaces is the part after the last '='
  if [[ $cur == *=* && $COMP_WORDBREAKS == *=* ]]; then COMPREPLY=("${COMPREPLY[@]#"${cur%=*}="}"); fi
  return 0
}
complete -o default -o nosort -F _opsh opsh
]==]

M.scripts.zsh = [==[
#compdef opsh
# opsh completion for zsh: source <(opsh completion zsh) after compinit
_opsh() {
  local -a candidates
  candidates=("${(@f)$(${~words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  candidates=(${candidates:#})
  if (( ${#candidates} )); then
    compadd -- "${candidates[@]}"
  else
    _files
  fi
}
if (( $+functions[compdef] )); then compdef _opsh opsh; fi
]==]

M.scripts.fish = [==[
# opsh completion for fish: opsh completion fish | source
function __opsh_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l found ($tokens[1] __complete $tokens[2..-1] $current 2>/dev/null)
    if test (count $found) -gt 0
        printf '%s\n' $found
    else
        __fish_complete_path $current
    end
end
complete -c opsh -f -a '(__opsh_complete)'
]==]

--- opsh completion bash|zsh|fish
function M.main(opts, words)
  local shell = words[1]
  if #words ~= 1 or not M.scripts[shell] then
    local core = require("opsh._core")
    error(core.error("usage", "usage: opsh completion bash|zsh|fish"), 0)
  end
  io.stdout:write(M.scripts[shell])
  return 0
end

return M
