-- opsh.twin.k8s.knobs: test knobs, per cluster, in the store (collection `k8s.knobs`, key the cluster
-- name or "all"), initially from OPSH_TWIN_K8S_KNOBS (JSON). Fields:
--   fail_rate (0..1) and fail_status (429 | 5xx, default 429), retry_after (seconds, default 1; 0: no
--   Retry-After header), fail_match (a path substring the failures are limited to), fail_methods ("GET,PATCH")
--   delay (seconds added to every reply), pod_start_seconds (Pending -> Running, default 2),
--   extra_pods (seed this many more pods, `load-N`, in the cluster's namespace), bookmark_seconds (how
--   long a watch is idle before a BOOKMARK, default 5).
local json = require("opsh.json")
local status = require("opsh.twin.k8s.status")

local M = {}

M.COLLECTION = "k8s.knobs"

local cache = {}

local function env_knobs()
  local s = os.getenv("OPSH_TWIN_K8S_KNOBS")
  if not s or s == "" then return {} end
  local ok, v = pcall(json.decode, s)
  return ok and type(v) == "table" and v or {}
end
local from_env

--- get(ctx) -> the knobs of ctx's cluster (env < "all" < cluster)
function M.get(ctx)
  from_env = from_env or env_knobs()
  local coll = ctx.store:raw()[M.COLLECTION]
  local a, c = coll and coll.all, coll and coll[ctx.cluster]
  local key = (a and a.v or 0) .. ":" .. (c and c.v or 0)
  local hit = cache[ctx.cluster]
  if hit and hit.key == key then return hit.knobs end
  local k = {}
  for n, v in pairs(from_env) do k[n] = v end
  for _, e in ipairs({a or false, c or false}) do
    if e then for n, v in pairs(json.decode(e.text)) do k[n] = v end end
  end
  cache[ctx.cluster] = {key = key, knobs = k}
  return k
end

--- inject(knobs, req) -> an injected failure response, or nil
function M.inject(k, req)
  local rate = tonumber(k.fail_rate)
  if not rate or rate <= 0 then return nil end
  if k.fail_match and not req.path:find(k.fail_match, 1, true) then return nil end
  if k.fail_methods and not ("," .. k.fail_methods .. ","):find("," .. req.method .. ",", 1, true) then return nil end
  if math.random() >= rate then return nil end
  local code = math.tointeger(tonumber(k.fail_status)) or 429
  local ra = k.retry_after == nil and 1 or tonumber(k.retry_after)
  local headers = {}
  if ra and ra > 0 then headers["Retry-After"] = tostring(math.tointeger(ra) or ra) end
  if code == 429 then
    headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["X-Kubernetes-PF-FlowSchema-UID"] = "twin-flowschema"
    headers["X-Kubernetes-PF-PriorityLevel-UID"] = "twin-prioritylevel"
    return {status = 429, headers = headers, body = "Too many requests, please try again later.\n"}
  end
  return status.answer(code, code == 503 and "the server is currently unable to handle the request"
    or "Internal error occurred: injected by the twin", nil, {retryAfterSeconds = ra and ra > 0 and math.tointeger(ra) or nil}, headers)
end

return M
