-- opsh.k8s.top (internal): top_nodes and top_pods from metrics.k8s.io, in kubectl's units
-- (CPU in millicores "250m", memory in mebibytes "128Mi") and sorting (--sort-by cpu|memory:
-- largest first); and quantity parsing ("100m", "1.5Gi", "2e3").
local client = require("opsh.k8s.client")
local helpers = require("opsh.k8s.helpers")

local Client = client.Client
local usage = client.usage

local M = {}

local SUFFIX = {
  n = 1e-9, u = 1e-6, m = 1e-3, [""] = 1, k = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15, E = 1e18,
  Ki = 2^10, Mi = 2^20, Gi = 2^30, Ti = 2^40, Pi = 2^50, Ei = 2^60,
}

--- quantity(s) -> the number a Kubernetes quantity stands for ("250m" -> 0.25, "1Ki" -> 1024), or nil
function M.quantity(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  local num, suffix = s:match("^([+-]?[%d.]+)(%a*)$")
  if num then
    local f = SUFFIX[suffix]
    if f and tonumber(num) then return tonumber(num) * f end
  end
  num = s:match("^[+-]?[%d.]+[eE][+-]?%d+$")
  if num then return tonumber(num) end
  return nil
end

local function millicores(v) return string.format("%dm", math.ceil((v or 0) * 1000 - 1e-9)) end
local function mebibytes(v) return string.format("%dMi", math.floor((v or 0) / 2^20)) end

local function sorter(by)
  if by == nil or by == "name" then return function(a, b) return a.name < b.name end end
  if by == "cpu" then return function(a, b)
    if a.cpu ~= b.cpu then return a.cpu > b.cpu end
    return a.name < b.name
  end end
  if by == "memory" then return function(a, b)
    if a.memory ~= b.memory then return a.memory > b.memory end
    return a.name < b.name
  end end
  usage("sort_by must be cpu or memory, not " .. tostring(by))
end

--- c:top_nodes([{sort_by = "cpu"|"memory", label_selector=}]) -> records {name, cpu_cores "250m",
-- cpu_percent "12%", memory_bytes "1024Mi", memory_percent, cpu (cores), memory (bytes)}
function Client:top_nodes(opts)
  opts = opts or {}
  local sort = sorter(opts.sort_by)
  local metrics = self:list("nodes.metrics.k8s.io", {label_selector = opts.label_selector})
  local alloc = {}
  for n in self:iter("nodes", {label_selector = opts.label_selector}) do
    local a = (n.status or {}).allocatable or {}
    alloc[n.metadata.name] = {cpu = M.quantity(a.cpu), memory = M.quantity(a.memory)}
  end
  local rows = {}
  for _, m in ipairs(metrics.items) do
    local u = m.usage or {}
    local cpu, mem = M.quantity(u.cpu) or 0, M.quantity(u.memory) or 0
    local a = alloc[m.metadata.name] or {}
    rows[#rows + 1] = {name = m.metadata.name, cpu = cpu, memory = mem, cpu_cores = millicores(cpu),
      memory_bytes = mebibytes(mem),
      cpu_percent = a.cpu and a.cpu > 0 and string.format("%d%%", math.floor(cpu / a.cpu * 100)) or "<unknown>",
      memory_percent = a.memory and a.memory > 0 and string.format("%d%%", math.floor(mem / a.memory * 100))
        or "<unknown>"}
  end
  table.sort(rows, sort)
  return helpers.with_columns(rows, {"name", "cpu_cores", "cpu_percent", "memory_bytes", "memory_percent"})
end

--- c:top_pods([{namespace=, all_namespaces=, label_selector=, sort_by=, containers = false}]) -> records
-- {namespace, name, cpu_cores, memory_bytes, cpu, memory} (one per container with containers = true)
function Client:top_pods(opts)
  opts = opts or {}
  local sort = sorter(opts.sort_by)
  local metrics = self:list("pods.metrics.k8s.io", {namespace = opts.namespace, all_namespaces = opts.all_namespaces,
    label_selector = opts.label_selector})
  local rows = {}
  for _, m in ipairs(metrics.items) do
    local cpu, mem = 0, 0
    for _, ct in ipairs(m.containers or {}) do
      local c, b = M.quantity((ct.usage or {}).cpu) or 0, M.quantity((ct.usage or {}).memory) or 0
      if opts.containers then
        rows[#rows + 1] = {namespace = m.metadata.namespace, name = m.metadata.name, container = ct.name, cpu = c,
          memory = b, cpu_cores = millicores(c), memory_bytes = mebibytes(b)}
      end
      cpu, mem = cpu + c, mem + b
    end
    if not opts.containers then
      rows[#rows + 1] = {namespace = m.metadata.namespace, name = m.metadata.name, cpu = cpu, memory = mem,
        cpu_cores = millicores(cpu), memory_bytes = mebibytes(mem)}
    end
  end
  table.sort(rows, sort)
  local cols = {"name", "cpu_cores", "memory_bytes"}
  if opts.containers then table.insert(cols, 2, "container") end
  if opts.all_namespaces then table.insert(cols, 1, "namespace") end
  return helpers.with_columns(rows, cols)
end

return M
