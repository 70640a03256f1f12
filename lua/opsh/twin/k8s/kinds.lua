-- opsh.twin.k8s.kinds: the resources the Kubernetes twin serves, as discovery shows them. Each entry:
-- group ("" = core), versions (preferred first), resource (plural), kind, namespaced, short names,
-- categories, subresources, verbs, the field-selector fields the real apiserver accepts, and whether it
-- is a CRD (no strategic merge patch) or computed (metrics: get/list only, nothing stored).
local M = {}

local ALL = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
local READ = {"get", "list"}
local SUB = {"get", "patch", "update"}

local BASE_FIELDS = {["metadata.name"] = true, ["metadata.namespace"] = true}
local function fields(list)
  local t = {["metadata.name"] = true, ["metadata.namespace"] = true}
  for _, f in ipairs(list or {}) do t[f] = true end
  return t
end

M.list = {
  {group = "", versions = {"v1"}, resource = "namespaces", kind = "Namespace", namespaced = false,
   short = {"ns"}, verbs = {"create", "delete", "get", "list", "patch", "update", "watch"},
   subresources = {{"status", "Namespace", SUB}}, fields = fields({"status.phase"})},
  {group = "", versions = {"v1"}, resource = "pods", kind = "Pod", namespaced = true, short = {"po"},
   categories = {"all"}, verbs = ALL,
   subresources = {{"log", "Pod", {"get"}}, {"status", "Pod", SUB},
     {"eviction", "Eviction", {"create"}, group = "policy", version = "v1"}},
   fields = fields({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
     "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"})},
  {group = "", versions = {"v1"}, resource = "nodes", kind = "Node", namespaced = false, short = {"no"},
   verbs = ALL, subresources = {{"status", "Node", SUB}}, fields = fields({"spec.unschedulable"})},
  {group = "", versions = {"v1"}, resource = "events", kind = "Event", namespaced = true, short = {"ev"},
   verbs = ALL, fields = fields({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
     "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
     "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"})},
  {group = "", versions = {"v1"}, resource = "configmaps", kind = "ConfigMap", namespaced = true,
   short = {"cm"}, verbs = ALL, fields = fields()},
  {group = "", versions = {"v1"}, resource = "secrets", kind = "Secret", namespaced = true, verbs = ALL,
   fields = fields({"type"})},
  {group = "", versions = {"v1"}, resource = "services", kind = "Service", namespaced = true, short = {"svc"},
   categories = {"all"}, verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
   subresources = {{"status", "Service", SUB}}, fields = fields({"spec.clusterIP", "spec.type"})},
  {group = "apps", versions = {"v1"}, resource = "deployments", kind = "Deployment", namespaced = true,
   short = {"deploy"}, categories = {"all"}, verbs = ALL,
   subresources = {{"scale", "Scale", SUB, group = "autoscaling", version = "v1"}, {"status", "Deployment", SUB}},
   fields = fields()},
  {group = "apps", versions = {"v1"}, resource = "replicasets", kind = "ReplicaSet", namespaced = true,
   short = {"rs"}, categories = {"all"}, verbs = ALL,
   subresources = {{"scale", "Scale", SUB, group = "autoscaling", version = "v1"}, {"status", "ReplicaSet", SUB}},
   fields = fields({"status.replicas"})},
  {group = "autoscaling", versions = {"v2", "v1"}, resource = "horizontalpodautoscalers",
   kind = "HorizontalPodAutoscaler", namespaced = true, short = {"hpa"}, categories = {"all"}, verbs = ALL,
   subresources = {{"status", "HorizontalPodAutoscaler", SUB}}, fields = fields()},
  {group = "cert-manager.io", versions = {"v1"}, resource = "certificates", kind = "Certificate",
   namespaced = true, short = {"cert", "certs"}, categories = {"cert-manager"}, verbs = ALL, crd = true,
   subresources = {{"status", "Certificate", SUB}}, fields = fields()},
  {group = "apiextensions.k8s.io", versions = {"v1"}, resource = "customresourcedefinitions",
   kind = "CustomResourceDefinition", namespaced = false, short = {"crd", "crds"}, verbs = READ,
   fields = fields()},
  {group = "metrics.k8s.io", versions = {"v1beta1"}, resource = "nodes", kind = "NodeMetrics",
   namespaced = false, verbs = READ, computed = true, fields = BASE_FIELDS},
  {group = "metrics.k8s.io", versions = {"v1beta1"}, resource = "pods", kind = "PodMetrics",
   namespaced = true, verbs = READ, computed = true, fields = BASE_FIELDS},
}

-- groups in discovery order, each {name, versions = {...}}
M.groups = {}
do
  local seen = {}
  for _, r in ipairs(M.list) do
    if r.group ~= "" and not seen[r.group] then
      seen[r.group] = {name = r.group, versions = r.versions}
      M.groups[#M.groups + 1] = seen[r.group]
    end
  end
end

local by_gvr = {}
for _, r in ipairs(M.list) do
  for _, v in ipairs(r.versions) do by_gvr[r.group .. "/" .. v .. "/" .. r.resource] = r end
end

--- find(group, version, resource) -> the resource entry or nil
function M.find(group, version, resource)
  return by_gvr[group .. "/" .. version .. "/" .. resource]
end

--- of_kind(kind) -> the stored resource entry for a kind (not metrics)
function M.of_kind(kind)
  for _, r in ipairs(M.list) do
    if r.kind == kind and not r.computed then return r end
  end
end

--- api_version(r [, version]) -> "apps/v1" or "v1"
function M.api_version(r, version)
  version = version or r.versions[1]
  return r.group == "" and version or (r.group .. "/" .. version)
end

--- collection(cluster, r) -> the store collection that holds r's objects in that cluster
function M.collection(cluster, r)
  return "k8s." .. cluster .. "." .. r.resource
end

--- key(r, namespace, name) -> the object's key in its collection
function M.key(r, ns, name)
  if r.namespaced then return ns .. "/" .. name end
  return name
end

return M
