-- opsh.repl.history: what the REPL keeps in its history file, and where that file is.
local M = {}

-- Lines that may hold a credential are never written to the history file.
M.SENSITIVE = {"secret", "password", "passwd", "passphrase", "token", "api[_-]?key", "private[_-]?key",
  "credential", "authorization", "bearer", "://[^/%s:@]+:[^/%s@]+@"}

--- keep_in_history(entry) -> false for what must not reach the history file: lines starting
--- with a space (as bash's ignorespace) and lines that look like they hold a credential.
function M.keep_in_history(entry)
  if entry:match("^%s") then return false end
  local lower = entry:lower()
  for _, pat in ipairs(M.SENSITIVE) do
    if lower:find(pat) then return false end
  end
  return true
end

--- The history file: $OPSH_HISTFILE (empty: none), else $XDG_STATE_HOME/opsh/history, else
--- ~/.local/state/opsh/history; nil when there is nowhere to keep it.
function M.history_path()
  local env = os.getenv("OPSH_HISTFILE")
  if env then return env ~= "" and env or nil end
  local state = os.getenv("XDG_STATE_HOME")
  if state and state:sub(1, 1) == "/" then return state .. "/opsh/history" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.local/state/opsh/history" end
  return nil
end

return M
