-- opsh.repl.syntax: Lua's lexical rules as the REPL needs them: keywords, names, string
-- literals, and a tokenizer (for the locals rewriting, opsh.repl.locals).
local M = {}

M.KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
  "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}
M.is_keyword = {}
for _, k in ipairs(M.KEYWORDS) do M.is_keyword[k] = true end

--- quote(s) -> s as a Lua string literal on one line
function M.quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" elseif c == "\t" then return "\\t" elseif c == "\r" then return "\\r"
    elseif c == '"' or c == "\\" then return "\\" .. c end
    return string.format("\\%03d", c:byte())
  end) .. '"'
end


--- is_identifier(k) -> k is a string that can be written as a bare name
function M.is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not M.is_keyword[k]
end

local OPS = {"...", "==", "~=", "<=", ">=", "//", "::", "<<", ">>", ".."}

--- tokens(source) -> {{kind = "name"|"keyword"|"string"|"number"|"op", text=, s=, e=}...}
--- Comments and spaces are skipped; an unterminated string or comment ends the list.
function M.tokens(src)
  local toks, i, n = {}, 1, #src
  local function add(kind, s, e) toks[#toks + 1] = {kind = kind, text = src:sub(s, e), s = s, e = e} end
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = src:find("%S", i) or n + 1
    elseif src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      local e
      if eq then e = select(2, src:find("]" .. eq .. "]", i, true)) else e = src:find("\n", i, true) end
      if not e then break end
      i = e + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local e = select(2, src:find("]" .. eq .. "]", i, true))
      if not e then break end
      add("string", i, e)
      i = e + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      if j > n then break end
      add("string", i, j)
      i = j + 1
    elseif c:match("[%a_]") then
      local e = select(2, src:find("^[%w_]+", i))
      add(M.is_keyword[src:sub(i, e)] and "keyword" or "name", i, e)
      i = e + 1
    elseif c:match("%d") or src:match("^%.%d", i) then
      local expo = src:match("^0[xX]", i) and "[pP]" or "[eE]"
      local e = select(2, src:find("^[%w_.]*", i))
      while src:sub(e, e):match(expo) and src:sub(e + 1, e + 1):match("[+-]") do
        e = select(2, src:find("^[%w_.]*", e + 2))
      end
      add("number", i, e)
      i = e + 1
    else
      local len = 1
      for _, op in ipairs(OPS) do
        if src:sub(i, i + #op - 1) == op then len = #op break end
      end
      add("op", i, i + len - 1)
      i = i + len
    end
  end
  return toks
end

return M
