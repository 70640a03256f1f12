---@meta opsh.azure
-- Editor stubs for `opsh.azure` (lua/opsh/azure.lua, lua/opsh/azure/*.lua). See docs/azure.md.

---@alias opsh.azure.audience "arm"|"keyvault"|"storage"|"loganalytics"|"appinsights"|"acr"|string

---@class opsh.azure.call
---@field api_version? string required unless the path's query has one
---@field body? table|string|opsh.secret a table is sent as JSON (its opsh.secret values as their bytes)
---@field query? table<string, any>
---@field headers? table<string, string|opsh.secret>
---@field missing_ok? boolean a 404 returns nil
---@field wait? boolean false: a long-running operation returns {handle=, status="InProgress"} at once
---@field final_state? "location"|"azure-async-operation"|"original-uri" where a POST's result is
---@field poll_interval? number longest wait between polls without Retry-After (30; waits start at 1 s and double)
---@field timeout? number seconds per HTTP call
---@field label? string what the progress line says
---@field read? boolean a POST that only reads (listKeys, a query): sent in a dry-run, no LRO
---@field secret_fields? string[] JSON members whose values come back as opsh.secret

---@class opsh.azure.operation
---@field handle string "azop1.…": give it to `opsh wait` or azure.wait
---@field method string
---@field url string
---@field status "InProgress"

---@class opsh.azure.arm
---@field subscription string
---@field budget opsh.azure.budget
local arm = {}
---@param path string "/subscriptions/…" or an absolute URL on the ARM endpoint
---@param opts? opsh.azure.call
---@return table|nil
function arm:get(path, opts) end
---@return table|opsh.azure.operation|nil
function arm:put(path, opts) end
---@return table|opsh.azure.operation|nil
function arm:patch(path, opts) end
---@return table|opsh.azure.operation|nil
function arm:post(path, opts) end
---@return table|opsh.azure.operation|nil
function arm:delete(path, opts) end
---@param method string
---@return table|opsh.azure.operation|nil
function arm:request(method, path, opts) end
--- Iterator over the items of every page (nextLink followed).
---@return fun(): table|nil
function arm:list(path, opts) end
--- Iterator over the pages (decoded answers).
---@return fun(): table|nil
function arm:pages(path, opts) end
---@return table[]
function arm:all(path, opts) end
--- The result of an operation left with --no-wait / {wait = false}.
---@param handle string|opsh.azure.operation
function arm:wait(handle, opts) end
--- "/subscriptions/<sub>/resourceGroups/<rg>/providers/<type>/<name>[/<child type>/<child name>...]"
---@return string
function arm:id(resource_group, provider_type, name, ...) end

---@class opsh.azure.budget
local budget = {}
---@return {buckets: table<string, {remaining: number, rate: number?, max: number, pending: integer}>, waits: integer, throttled: integer}
function budget:stats() end

---@class opsh.azure.credential
---@field chosen? string the source that gave the first token (remembered for the run)
local chain = {}
---@param audience opsh.azure.audience
---@return opsh.secret token, number expires_at
function chain:token(audience, opts) end
--- An opsh.http client auth provider for that audience.
---@return fun(ctx: table): opsh.secret
function chain:auth(audience) end

---@class opsh.azure
---@field aks opsh.azure.aks
---@field postgres opsh.azure.postgres
---@field redis opsh.azure.redis
---@field monitor opsh.azure.monitor
---@field dns opsh.azure.dns
---@field cost opsh.azure.cost
---@field storage opsh.azure.storage
---@field insights fun(env?: table|string, app?: string): opsh.azure.query.client App Insights queries (docs/query.md)
---@field logs fun(env?: table|string, workspace?: string): opsh.azure.query.client Log Analytics queries
---@field keyvault fun(env?: table|string, vault?: string): opsh.azure.keyvault.vault Key Vault secrets (docs/keyvault.md)
local azure = {}
--- The environment's container registry (one per environment for the run; docs/acr.md).
---@param env? table|string
---@return opsh.azure.acr.registry
function azure.acr(env) end
--- The environment's storage account, with Entra tokens (docs/blob.md).
---@param env? table|string
---@return opsh.azure.blob.account
function azure.blob(env) end
--- The environment's credential chain (one per environment for the run).
---@param env? table|string default: the selected environment
---@return opsh.azure.credential
function azure.credential(env) end
---@param audience opsh.azure.audience
---@return opsh.secret token, number expires_at
function azure.token(audience, env) end
--- The environment's ARM client; with opts, a new one made with them.
---@param env? table|string
---@param opts? {credential?: opsh.azure.credential, poll_interval?: number, min_poll?: number, max_poll?: number, retries?: integer, budget?: boolean}
---@return opsh.azure.arm
function azure.arm(env, opts) end
--- Follow an operation started with --no-wait (in this or another process) to its end.
---@param handle string
---@param opts? {env?: table|string, poll_interval?: number}
function azure.wait(handle, opts) end
--- Mutations give an operation handle instead of waiting (`opsh --no-wait`).
function azure.no_wait(on) end
--- Forget cached credentials, tokens, clients and budgets.
function azure.reset() end
---@return table the environment (a table or the named one; nil: the selected one)
function azure.env_of(env) end

-- Every resource function takes one options table; `env` (default the selected environment) and the
-- names below default to the environment's. Mutations take `wait = false` to return an operation.

---@class opsh.azure.aks
local aks = {}
---@param opts? {cluster?: string, resource_group?: string, env?: table}
function aks.get(opts) end
function aks.list(opts) end
function aks.pools(opts) end
---@param opts {pool?: string, cluster?: string, resource_group?: string}
function aks.pool(opts) end
---@param opts {pool?: string, count: integer, wait?: boolean}
function aks.scale(opts) end
---@param opts {pool?: string, min?: integer, max?: integer, enabled?: boolean, count?: integer, wait?: boolean}
function aks.autoscale(opts) end
---@param opts {pool: string, vm_size: string, count?: integer, mode?: "User"|"System", min?: integer, max?: integer, spot?: true|{max_price?: number, eviction_policy?: "Delete"|"Deallocate"}, labels?: table, taints?: string[], zones?: string[], orchestrator_version?: string, wait?: boolean}
function aks.add_pool(opts) end
---@param opts? {pool?: string, wait?: boolean}
function aks.upgrade_node_image(opts) end
--- The user (or admin) kubeconfig as YAML text for opsh.k8s.from_kubeconfig: a credential.
---@param opts? {cluster?: string, admin?: boolean}
---@return string
function aks.kubeconfig(opts) end

---@class opsh.azure.postgres
local postgres = {}
function postgres.get(opts) end
function postgres.list(opts) end
---@param opts {sku: string, tier: "Burstable"|"GeneralPurpose"|"MemoryOptimized", wait?: boolean}
function postgres.update_sku(opts) end
--- A decrease is refused before anything is sent.
---@param opts {size_gb: integer, wait?: boolean}
function postgres.grow_storage(opts) end
---@param opts {password: opsh.secret, wait?: boolean}
function postgres.set_admin_password(opts) end
---@param opts {name: string}
function postgres.parameter(opts) end
---@param opts {name: string, value: any, wait?: boolean}
function postgres.set_parameter(opts) end
function postgres.backups(opts) end
---@param opts? {name?: string, wait?: boolean}
function postgres.backup(opts) end
---@param opts {target: string, time?: number|string, location?: string, target_resource_group?: string, wait?: boolean}
function postgres.restore(opts) end
---@param opts {target: string, location: string, time?: number|string, wait?: boolean}
function postgres.geo_restore(opts) end
function postgres.replicas(opts) end
---@param opts? {server?: string, mode?: "standalone"|"switchover", option?: "planned"|"forced", wait?: boolean}
function postgres.promote(opts) end

---@class opsh.azure.redis
local redis = {}
function redis.get(opts) end
function redis.list(opts) end
---@param opts {sku: "Basic"|"Standard"|"Premium", capacity: integer, family?: string, wait?: boolean}
function redis.update_sku(opts) end
---@return {primaryKey: opsh.secret, secondaryKey: opsh.secret}
function redis.keys(opts) end
---@param opts {key: "Primary"|"Secondary"}
---@return {primaryKey: opsh.secret, secondaryKey: opsh.secret}
function redis.regenerate_key(opts) end

---@class opsh.azure.monitor
local monitor = {}
function monitor.alerts(opts) end
---@param opts {name: string}
function monitor.alert(opts) end
---@param opts {name: string, scope: string, criteria: {metric: string, threshold: number, operator?: string, aggregation?: string, namespace?: string}[], severity?: integer, description?: string, window?: string, frequency?: string, action_group?: string|false, enabled?: boolean}
function monitor.put_alert(opts) end
---@param opts {name: string}
function monitor.delete_alert(opts) end
---@param opts? {id?: string}
function monitor.action_group(opts) end
---@param opts {resource: string, metrics: string|string[], timespan?: string|number, interval?: string, aggregation?: string, namespace?: string, filter?: string}
function monitor.metrics(opts) end
---@param opts {resource: string, name: string, workspace?: string, logs?: string[], metrics?: string[]}
function monitor.diagnostic_setting(opts) end
function monitor.appinsights(opts) end
---@param opts {days: integer, name?: string}
function monitor.set_retention(opts) end

---@class opsh.azure.dns
local dns = {}
---@param opts? {zone?: string, record?: string, resource_group?: string}
function dns.a_record(opts) end
---@param opts {ips: string|string[], ttl?: integer, zone?: string, record?: string}
function dns.set_a_record(opts) end
---@return string[]
function dns.addresses(record_set) end

---@class opsh.azure.cost
local cost = {}
---@param opts? {scope?: string, filter?: string, top?: integer, expand?: string, metric?: string}
function cost.usage(opts) end
---@param opts? {scope?: string, type?: string, timeframe?: string, from?: string, to?: string, granularity?: string, group_by?: string|string[]}
function cost.query(opts) end

---@class opsh.azure.storage
local storage = {}
---@param opts? {account?: string, resource_group?: string}
function storage.blob_properties(opts) end
---@param opts {delete_retention_days?: integer|false, container_delete_retention_days?: integer|false, versioning?: boolean}
function storage.set_blob_properties(opts) end

azure.aks, azure.postgres, azure.redis, azure.monitor = aks, postgres, redis, monitor
azure.dns, azure.cost, azure.storage = dns, cost, storage
return azure
