-- opsh.azure.dns: Azure DNS A record sets (Microsoft.Network/dnsZones) — the DR failover's DNS
-- switch. Zone, record and resource group come from the environment's `dns` section unless given.
local R = require("opsh.azure.resource")

local M = {}

M.API = "2018-05-01"

local function record_of(opts, fname)
  local envt, arm = R.ctx(opts)
  local d = envt.dns or {}
  local zone = R.pick(opts, "zone", d.zone, fname, "the DNS zone")
  local name = R.pick(opts, "record", d.record, fname, "the record set name ('@' for the apex)")
  local rg = R.pick(opts, "resource_group", d.resource_group or envt.resource_group, fname, "the resource group")
  return arm, arm:id(rg, "Microsoft.Network/dnsZones", zone, "A", name), zone, name
end

local RECORD = R.set("zone", "record", "resource_group")

--- a_record{zone =, record =} -> the A record set (properties.TTL, properties.ARecords = {{ipv4Address}}),
-- or nil when there is none
function M.a_record(opts)
  opts = R.args(opts, "dns.a_record", RECORD)
  local arm, id = record_of(opts, "dns.a_record")
  return arm:get(id, {api_version = M.API, missing_ok = true})
end

--- addresses(record_set) -> {"203.0.113.10", ...}
function M.addresses(rs)
  local out = {}
  for _, a in ipairs(rs and rs.properties and rs.properties.ARecords or {}) do out[#out + 1] = a.ipv4Address end
  return out
end

--- set_a_record{ips = {"203.0.113.10"}, ttl = the current one (else 300)} -> the record set, which
-- then holds exactly these addresses (created when missing; its other properties kept)
function M.set_a_record(opts)
  opts = R.args(opts, "dns.set_a_record", R.set("zone", "record", "resource_group", "ips", "ttl"))
  local ips = opts.ips
  if type(ips) == "string" then ips = {ips} end
  if type(ips) ~= "table" or #ips == 0 then R.usage("dns.set_a_record", "ips must be an IPv4 address or a list of them") end
  local records = {}
  for i, ip in ipairs(ips) do
    local a, b, c, d = tostring(ip):match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a or tonumber(a) > 255 or tonumber(b) > 255 or tonumber(c) > 255 or tonumber(d) > 255 then
      R.usage("dns.set_a_record", string.format("'%s' is not an IPv4 address", tostring(ip)))
    end
    records[i] = {ipv4Address = ip}
  end
  local ttl = R.integer(opts, "ttl", "dns.set_a_record", 0)
  local arm, id = record_of(opts, "dns.set_a_record")
  local current = arm:get(id, {api_version = M.API, missing_ok = true})
  local props = R.copy(current and current.properties or {})
  props.ARecords = records
  props.TTL = ttl or props.TTL or 300
  props.fqdn, props.provisioningState = nil, nil
  return arm:put(id, {api_version = M.API, body = {properties = props}})
end

return M
