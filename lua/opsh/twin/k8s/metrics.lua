-- opsh.twin.k8s.metrics: metrics.k8s.io/v1beta1 computed from the running pods: each container's
-- usage is a deterministic function of its pod's name (a steady load per deployment with some spread),
-- a node's usage is a base plus its pods'. Nothing is stored: the metrics follow the pods.
local json = require("opsh.json")
local kinds = require("opsh.twin.k8s.kinds")
local objects = require("opsh.twin.k8s.objects")
local selectors = require("opsh.twin.k8s.selectors")
local status = require("opsh.twin.k8s.status")
local time = require("opsh.time")

local M = {}

local function h(s)
  local x = 2166136261
  for i = 1, #s do x = ((x ~ s:byte(i)) * 16777619) & 0xffffffff end
  return x
end

-- per-deployment base load (millicores, MiB): ai-service is the heavy one
local BASE = {["ai-service"] = {450, 900}, web = {180, 300}, gateway = {220, 260}, ["document-service"] = {260, 520},
  ["task-service"] = {90, 200}, ["integration-service"] = {70, 180}, ["notification-service"] = {40, 120}}

--- usage(pod, container) -> millicores, bytes
function M.usage(pod, cname)
  local app = pod.metadata.labels and pod.metadata.labels.app or ""
  local base = BASE[app] or {20, 64}
  local x = h(pod.metadata.name .. "/" .. cname)
  local cpu = base[1] + x % (base[1] // 2 + 10)
  local mem = (base[2] + (x >> 8) % (base[2] // 3 + 16)) * 1048576
  return cpu, mem
end

local function running(pod) return pod.status and pod.status.phase == "Running" and not pod.metadata.deletionTimestamp end

local function pod_metrics(pod, now)
  local cs = json.array()
  for i, c in ipairs(pod.spec.containers or {}) do
    local cpu, mem = M.usage(pod, c.name)
    cs[i] = {name = c.name, usage = {cpu = cpu * 1000000 .. "n", memory = (mem // 1024) .. "Ki"}}
  end
  return {kind = "PodMetrics", apiVersion = "metrics.k8s.io/v1beta1",
    metadata = {name = pod.metadata.name, namespace = pod.metadata.namespace, labels = pod.metadata.labels,
      creationTimestamp = now}, timestamp = now, window = "15.012s", containers = cs}
end

--- pods(rt) -> PodMetricsList or one PodMetrics
function M.pods(rt)
  local pr = kinds.find("", "v1", "pods")
  local now = objects.now()
  if rt.name then
    local pod = objects.get(rt.ctx, pr, rt.ns, rt.name)
    if not pod or not running(pod) then status.fail(404, string.format('podmetrics.metrics.k8s.io "%s" not found', rt.name), "NotFound") end
    return pod_metrics(pod, now)
  end
  local lm, err = selectors.labels(rt.req.query.labelSelector)
  if err then status.fail(400, err) end
  local items = json.array()
  for _, pod in ipairs(objects.all(rt.ctx, pr, rt.ns)) do
    if running(pod) and (not lm or lm(pod.metadata.labels)) then items[#items + 1] = pod_metrics(pod, now) end
  end
  return {kind = "PodMetricsList", apiVersion = "metrics.k8s.io/v1beta1", metadata = {}, items = items}
end

local function node_metrics(rt, node, pods, now)
  local x = h(node.metadata.name)
  local cpu, mem = 150 + x % 100, (900 + (x >> 8) % 300) * 1048576
  for _, pod in ipairs(pods) do
    if pod.spec.nodeName == node.metadata.name and running(pod) then
      for _, c in ipairs(pod.spec.containers or {}) do
        local c1, m1 = M.usage(pod, c.name)
        cpu, mem = cpu + c1, mem + m1
      end
    end
  end
  return {kind = "NodeMetrics", apiVersion = "metrics.k8s.io/v1beta1",
    metadata = {name = node.metadata.name, labels = node.metadata.labels, creationTimestamp = now},
    timestamp = now, window = "20.027s", usage = {cpu = cpu * 1000000 .. "n", memory = (mem // 1024) .. "Ki"}}
end

--- nodes(rt) -> NodeMetricsList or one NodeMetrics
function M.nodes(rt)
  local now = objects.now()
  local nr = kinds.find("", "v1", "nodes")
  local pods = objects.all(rt.ctx, kinds.find("", "v1", "pods"), nil)
  if rt.name then
    local node = objects.get(rt.ctx, nr, nil, rt.name)
    if not node then status.fail(404, string.format('nodemetrics.metrics.k8s.io "%s" not found', rt.name), "NotFound") end
    return node_metrics(rt, node, pods, now)
  end
  local lm, err = selectors.labels(rt.req.query.labelSelector)
  if err then status.fail(400, err) end
  local items = json.array()
  for _, node in ipairs(objects.all(rt.ctx, nr, nil)) do
    if not lm or lm(node.metadata.labels) then items[#items + 1] = node_metrics(rt, node, pods, now) end
  end
  local _ = time
  return {kind = "NodeMetricsList", apiVersion = "metrics.k8s.io/v1beta1", metadata = {}, items = items}
end

return M
