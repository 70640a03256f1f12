-- opsh.k8s.tables (internal): a list from c:list / c:get prints at the REPL as `kubectl get` prints
-- it — NAME READY STATUS RESTARTS AGE for pods, NAME READY UP-TO-DATE AVAILABLE AGE for deployments,
-- ..., NAME AGE for the rest, NAMESPACE first across namespaces. The list keeps the API's shape
-- (apiVersion, kind, metadata, items); its metatable's __pretty is the REPL's hook.
local client = require("opsh.k8s.client")
local helpers = require("opsh.k8s.helpers")

local M = {}

local function num(v) return tonumber(v) or 0 end

local function join(list, sep)
  local out = {}
  for _, v in ipairs(list or {}) do out[#out + 1] = tostring(v) end
  return #out > 0 and table.concat(out, sep or ",") or "<none>"
end

local COLUMNS = {
  Pod = {{"READY", function(o) return helpers.pod_summary(o).ready end},
    {"STATUS", function(o) return helpers.pod_summary(o).status end},
    {"RESTARTS", function(o) return helpers.pod_summary(o).restarts end}},
  Deployment = {{"READY", function(o) return string.format("%d/%d", num((o.status or {}).readyReplicas),
      num((o.spec or {}).replicas)) end},
    {"UP-TO-DATE", function(o) return num((o.status or {}).updatedReplicas) end},
    {"AVAILABLE", function(o) return num((o.status or {}).availableReplicas) end}},
  ReplicaSet = {{"DESIRED", function(o) return num((o.spec or {}).replicas) end},
    {"CURRENT", function(o) return num((o.status or {}).replicas) end},
    {"READY", function(o) return num((o.status or {}).readyReplicas) end}},
  Node = {{"STATUS", function(o)
      for _, c in ipairs((o.status or {}).conditions or {}) do
        if c.type == "Ready" then
          local s = c.status == "True" and "Ready" or "NotReady"
          if (o.spec or {}).unschedulable then s = s .. ",SchedulingDisabled" end
          return s
        end
      end
      return "Unknown"
    end},
    {"ROLES", function(o)
      local roles = {}
      for k in pairs((o.metadata or {}).labels or {}) do
        local r = k:match("^node%-role%.kubernetes%.io/(.+)$")
        if r then roles[#roles + 1] = r end
      end
      table.sort(roles)
      return join(roles)
    end},
    {"VERSION", function(o) return ((o.status or {}).nodeInfo or {}).kubeletVersion end}},
  HorizontalPodAutoscaler = {
    {"REFERENCE", function(o) local r = (o.spec or {}).scaleTargetRef or {}; return tostring(r.kind) .. "/" .. tostring(r.name) end},
    {"MINPODS", function(o) return (o.spec or {}).minReplicas end},
    {"MAXPODS", function(o) return (o.spec or {}).maxReplicas end},
    {"REPLICAS", function(o) return num((o.status or {}).currentReplicas) end}},
  Service = {{"TYPE", function(o) return (o.spec or {}).type end},
    {"CLUSTER-IP", function(o) return (o.spec or {}).clusterIP end}},
  ConfigMap = {{"DATA", function(o) local n = 0; for _ in pairs(o.data or {}) do n = n + 1 end; return n end}},
  Secret = {{"TYPE", function(o) return o.type end},
    {"DATA", function(o) local n = 0; for _ in pairs(o.data or {}) do n = n + 1 end; return n end}},
  Namespace = {{"STATUS", function(o) return (o.status or {}).phase end}},
  Certificate = {{"READY", function(o)
      for _, c in ipairs((o.status or {}).conditions or {}) do if c.type == "Ready" then return c.status end end
      return "Unknown"
    end},
    {"SECRET", function(o) return (o.spec or {}).secretName end}},
  Event = {{"TYPE", function(o) return o.type end}, {"REASON", function(o) return o.reason end},
    {"OBJECT", function(o) local io = o.involvedObject or {}; return string.lower(tostring(io.kind)) .. "/" .. tostring(io.name) end},
    {"MESSAGE", function(o) return o.message end}},
}

--- rows(list) -> records and column names for printing
function M.rows(list)
  local kind = (list.kind or ""):gsub("List$", "")
  local cols = COLUMNS[kind] or {}
  local info = client.list_info[list]
  local all = info and info.all_namespaces
  local names = {}
  if all then names[#names + 1] = "NAMESPACE" end
  names[#names + 1] = "NAME"
  for _, c in ipairs(cols) do names[#names + 1] = c[1] end
  names[#names + 1] = "AGE"
  local rows = {}
  for i, o in ipairs(list.items or {}) do
    local md = o.metadata or {}
    local r = {NAMESPACE = md.namespace, NAME = md.name, AGE = helpers.age(md.creationTimestamp)}
    for _, c in ipairs(cols) do
      local ok, v = pcall(c[2], o)
      r[c[1]] = ok and v or "?"
    end
    rows[i] = r
  end
  return rows, names
end

client.list_meta.__name = "opsh.k8s.list"
client.list_meta.__pretty = function(list, opts)
  local rows, names = M.rows(list)
  if #rows == 0 then return "No resources found." end
  rows.columns = names
  local out = require("opsh.out")
  return (out.render(rows, {color = opts and opts.color}):gsub("\n$", ""))
end

return M
