---@meta opsh.fs
-- Editor stubs for `opsh.fs` (lua/opsh/fs.lua + bindings/fs/fs.c, bindings/fs/file.c). See docs/fs.md.

---@class opsh.fs.stat
---@field type "file"|"dir"|"link"|"fifo"|"socket"|"char"|"block"|"unknown"
---@field size integer
---@field mode integer permission bits
---@field mtime number
---@field atime number
---@field ctime number
---@field uid integer
---@field gid integer
---@field nlink integer
---@field ino integer

---@class opsh.fs.file
local file = {}
---Up to n bytes (default 65536), nil at the end.
---@param n? integer
---@return string|nil
function file:read(n) end
---@return fun(): string|nil
function file:lines() end
---@param data string|opsh.secret
---@return opsh.fs.file
function file:write(data) end
function file:sync() end
---@return opsh.fs.stat
function file:stat() end
---@param mode integer
function file:chmod(mode) end
---@return string
function file:path() end
function file:close() end

---@alias opsh.fs.mode string|integer octal string "0644" or integer

---@class opsh.fs
local fs = {}
---@param path string
---@param opts? {missing_ok?: boolean}
---@return string|nil
function fs.read(path, opts) end
---@param path string
---@param data string|opsh.secret
---@param opts? {mode?: opsh.fs.mode, atomic?: boolean}
function fs.write(path, data, opts) end
---@param path string
---@param data string|opsh.secret
---@param opts? {mode?: opsh.fs.mode}
function fs.write_atomic(path, data, opts) end
---@param path string
---@param data string|opsh.secret
---@param opts? {mode?: opsh.fs.mode}
function fs.append(path, data, opts) end
---@param path string
---@param how? "r"|"w"|"a"|"r+"|"w+"|"a+"|"wx"
---@param opts? {mode?: opsh.fs.mode}
---@return opsh.fs.file
function fs.open(path, how, opts) end
---@param path string
---@param opts? {parents?: boolean, mode?: opsh.fs.mode}
---@return boolean created
function fs.mkdir(path, opts) end
---@param prefix? string
---@return string path
function fs.tmpdir(prefix) end
---@param path string
---@return boolean removed
function fs.rmtree(path) end
---@param path string
function fs.remove(path) end
---@param from string
---@param to string
function fs.rename(from, to) end
---@param path string
---@return opsh.fs.stat|nil
function fs.stat(path) end
---@param path string
---@return opsh.fs.stat|nil
function fs.lstat(path) end
---@param path string
---@return boolean
function fs.exists(path) end
---@param dir string
---@return string[] names, table<string, string> types
function fs.list(dir) end
---@param pattern string
---@return string[]
function fs.glob(pattern) end
---@param path string
---@param mode opsh.fs.mode
function fs.chmod(path, mode) end
---@return string
function fs.dirname(path) end
---@return string
function fs.basename(path) end
---@return string
function fs.join(...) end
---The working directory (getcwd; not $PWD).
---@return string
function fs.cwd() end
---path made absolute against the working directory (not normalised).
---@param path string
---@return string
function fs.absolute(path) end

return fs
