-- Images a cluster refers to: the containers of its pods and of every workload's pod template
-- (ReplicaSets kept for `rollout undo` included), and the digests its kubelets report. Used before a
-- registry cleanup so that nothing running, or one rollback away, loses its image.
local scan = require("opsh.ops.scan")

local M = {}

M.KINDS = {"pods", "replicasets", "deployments", "statefulsets", "daemonsets", "jobs", "cronjobs"}

--- parse(ref) -> {path =, tag =, digest =} of an image reference without its registry host
-- ("acr.azurecr.io/team/app:1.2@sha256:ab.." -> path "team/app", tag "1.2", digest "sha256:ab.."); a
-- runtime prefix ("docker-pullable://") is dropped; nil for what is not a reference
function M.parse(ref)
  if type(ref) ~= "string" or ref == "" then return nil end
  ref = ref:gsub("^[%w-]+://", "")
  local name, digest = ref:match("^(.-)@([%w+._-]+:%x+)$")
  name = name or ref
  local first, rest = name:match("^([^/]+)/(.+)$")
  if first and (first:find("[.:]") or first == "localhost") then name = rest end
  local path, tag = name:match("^(.-):([%w_][%w_.-]*)$")
  path = path or name
  if path == "" then return nil end
  return {path = path, tag = tag or (not digest and "latest" or nil), digest = digest}
end

local function add(set, ref, where)
  local r = M.parse(ref)
  if not r then return end
  if r.tag then set[r.path .. ":" .. r.tag] = set[r.path .. ":" .. r.tag] or where end
  if r.digest then set[r.path .. "@" .. r.digest] = set[r.path .. "@" .. r.digest] or where end
end

--- referenced(client) -> set, skipped: keys "path:tag" and "path@digest" for every image the cluster
-- refers to (all namespaces), each naming one object that does ("pod production/web-abc"); skipped
-- lists the kinds this cluster does not serve. Any other failure (a 403) raises: a cleanup must not
-- go on without knowing what is in use.
function M.referenced(c)
  local set, skipped = {}, {}
  for _, kind in ipairs(M.KINDS) do
    local served, err = pcall(c.resource, c, kind)
    if not served then
      if type(err) == "table" and err.reason == "NotFound" and err.resource == kind then
        skipped[#skipped + 1] = kind
      else
        error(err, 0)
      end
    else
      for item in c:iter(kind, {all_namespaces = true}) do
        local md = item.metadata or {}
        local where = string.format("%s %s/%s", (item.kind or kind):lower(), tostring(md.namespace), tostring(md.name))
        local spec = scan.pod_spec(item) or {}
        for _, field in ipairs({"initContainers", "containers", "ephemeralContainers"}) do
          for _, ct in ipairs(spec[field] or {}) do add(set, ct.image, where) end
        end
        local st = item.status or {}
        for _, field in ipairs({"initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"}) do
          for _, cs in ipairs(st[field] or {}) do add(set, cs.imageID, where) end
        end
      end
    end
  end
  return set, skipped
end

--- user(set, repo, digest, tags) -> the object that refers to this manifest (by digest or by one of
-- its tags), or nil. The registry host is not compared: the same path and tag on another registry
-- counts too, which can only keep more.
function M.user(set, repo, digest, tags)
  local by_digest = set[repo .. "@" .. digest]
  if by_digest then return by_digest end
  for _, t in ipairs(tags or {}) do
    if set[repo .. ":" .. t] then return set[repo .. ":" .. t] end
  end
  return nil
end

return M
