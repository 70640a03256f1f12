-- opsh.lines (internal): a stream of chunks cut into lines, for opsh.proc (process:lines, run's
-- line callbacks), opsh.fs (file:lines) and opsh.http (on_line). A line ends at "\n", which it does
-- not include; "\r\n" loses its "\r" too unless keep_cr; a last line without "\n" comes at the end.
-- A long line arriving in many chunks is joined once (no quadratic copying).
local M = {}

--- splitter(emit [, keep_cr]) -> feed(chunk), finish(). emit(line) returning false stops the
-- splitting: feed returns false then and for every later chunk, and finish emits nothing.
function M.splitter(emit, keep_cr)
  local parts = {}   -- the partial line so far, in pieces
  local stopped = false
  local function feed(chunk)
    if stopped then return false end
    if not string.find(chunk, "\n", 1, true) then
      parts[#parts + 1] = chunk
      return
    end
    local s = #parts > 0 and (table.concat(parts) .. chunk) or chunk
    parts = {}
    local pos = 1
    while true do
      local nl = string.find(s, "\n", pos, true)
      if not nl then break end
      local stop = nl - 1
      if not keep_cr and stop >= pos and string.byte(s, stop) == 13 then stop = stop - 1 end
      if emit(string.sub(s, pos, stop)) == false then
        stopped = true
        return false
      end
      pos = nl + 1
    end
    if pos <= #s then parts[1] = string.sub(s, pos) end
  end
  local function finish()
    if stopped or #parts == 0 then return end
    local line = table.concat(parts)
    parts = {}
    emit(line)
  end
  return feed, finish
end

--- iterator(read [, keep_cr]) -> an iterator over the lines of the chunks that read() returns
-- until it returns nil.
function M.iterator(read, keep_cr)
  local queue, head, done = {}, 1, false
  local feed, finish = M.splitter(function(line) queue[#queue + 1] = line end, keep_cr)
  return function()
    while true do
      if head <= #queue then
        local line = queue[head]
        queue[head] = nil
        head = head + 1
        return line
      end
      if done then return nil end
      queue, head = {}, 1
      local chunk = read()
      if chunk then
        feed(chunk)
      else
        done = true
        finish()
      end
    end
  end
end

return M
