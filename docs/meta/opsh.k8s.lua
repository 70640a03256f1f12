---@meta opsh.k8s
-- opsh.k8s: Kubernetes through opsh.http (lua/opsh/k8s.lua, lua/opsh/k8s/). See docs/k8s.md.

---@class opsh.k8s.opts
---@field namespace? string
---@field all_namespaces? boolean
---@field context? string module-level calls: the default client of that context
---@field label_selector? string|table "app=web" or {app = "web"}
---@field field_selector? string|table "status.phase=Failed"
---@field limit? integer page size (default 500)
---@field resource_version? string
---@field missing_ok? boolean get/delete: nil instead of a NotFound error
---@field subresource? string "status", "scale"
---@field type? "merge"|"strategic"|"json"|"apply" patch type
---@field field_manager? string
---@field force? boolean server-side apply
---@field propagation? "Background"|"Foreground"|"Orphan"
---@field grace_period? integer seconds
---@field name? string watch one object
---@field timeout? number watch: seconds for the whole watch

---@class opsh.k8s.log_options
---@field namespace? string
---@field container? string
---@field all_containers? boolean
---@field tail? integer
---@field since? string|number "10m" or seconds
---@field since_time? string RFC 3339
---@field timestamps? boolean
---@field previous? boolean
---@field follow? boolean needs on_line
---@field limit_bytes? integer
---@field on_line? fun(line: string, container?: string): boolean|nil

---@class opsh.k8s.list
---@field apiVersion string
---@field kind string
---@field metadata table
---@field items table[]

---@class opsh.k8s.client_options
---@field kubeconfig? string a kubeconfig file (only that one)
---@field context? string
---@field namespace? string
---@field cache_dir? string|false discovery cache (default $XDG_CACHE_HOME/opsh/k8s/discovery)
---@field discovery_ttl? number seconds (default 6 h)
---@field field_manager? string default "opsh"
---@field request_timeout? number seconds per request (default 60; watches and follows have none)

---@class opsh.k8s
local k8s = {}

---A client: the environment's (aks.kubeconfig/aks.context), else KUBECONFIG / ~/.kube/config, else in-cluster.
---@param opts? opsh.k8s.client_options
---@return opsh.k8s.client
function k8s.client(opts) end

---A client from kubeconfig text (never written to disk).
---@param yaml string
---@param opts? opsh.k8s.client_options
---@return opsh.k8s.client
function k8s.from_kubeconfig(yaml, opts) end

---The pod's service account client; kind config when not in a pod.
---@param opts? {namespace?: string}
---@return opsh.k8s.client
function k8s.in_cluster(opts) end

---The merged kubeconfig's contexts.
---@param kubeconfig? string
---@return {name: string, cluster: string, user: string, namespace?: string, current: boolean}[]
function k8s.contexts(kubeconfig) end

---The client module-level calls use (one per context).
---@param opts? {context?: string, namespace?: string}
---@return opsh.k8s.client
function k8s.default(opts) end

---Forget the default clients.
function k8s.reset() end

---Does a k8s error say that reason (or code)?
---@param err any
---@param what string|integer "NotFound", 409, ...
---@return boolean
function k8s.is(err, what) end

---fn's results; fn runs again after a 409 Conflict.
---@generic R
---@param fn fun(attempt: integer): R
---@param attempts? integer default 5
---@return R
function k8s.retry_conflict(fn, attempts) end

---{app = "web"} -> "app=web"
---@param t string|table
---@return string
function k8s.selector(t) end

---Get one object (nil with missing_ok when absent), or the list without a name.
---@param resource string|table pods, po, deploy, deployments.apps, "deploy/web", or an object
---@param name? string|table
---@param opts? opsh.k8s.opts
---@return table|nil
function k8s.get(resource, name, opts) end

---Every page of a list (limit/continue), {apiVersion, kind, metadata, items}; prints as a kubectl table.
---@param resource string
---@param opts? opsh.k8s.opts
---@return opsh.k8s.list
function k8s.list(resource, opts) end

---Iterate over the items a page at a time (flat memory).
---@param resource string
---@param opts? opsh.k8s.opts
---@return fun(): table|nil
function k8s.iter(resource, opts) end

---POST an object ([resource,] obj [, opts]).
---@param resource string|table
---@param obj? table
---@param opts? opsh.k8s.opts
---@return table
function k8s.create(resource, obj, opts) end

---PUT an object ([resource,] obj [, opts]); a stale resourceVersion raises 409 Conflict.
---@param resource string|table
---@param obj? table
---@param opts? opsh.k8s.opts
---@return table
function k8s.replace(resource, obj, opts) end

---Patch: opts.type "merge" (default), "strategic", "json", "apply" (field_manager, force).
---@param resource string|table
---@param name string
---@param patch table|string
---@param opts? opsh.k8s.opts
---@return table
function k8s.patch(resource, name, patch, opts) end

---Delete one object (propagation, grace_period, missing_ok).
---@param resource string|table
---@param name? string
---@param opts? opsh.k8s.opts
---@return table|nil
function k8s.delete(resource, name, opts) end

---DELETE on the collection with label/field selectors.
---@param resource string
---@param opts opsh.k8s.opts
---@return table
function k8s.delete_collection(resource, opts) end

---The object through its status subresource.
---@param resource string
---@param name string
---@param opts? opsh.k8s.opts
---@return table
function k8s.status(resource, name, opts) end

---POST a policy/v1 Eviction for the pod.
---@param pod string
---@param opts? opsh.k8s.opts
---@return table
function k8s.evict(pod, opts) end

---Watch: fn(event) for ADDED/MODIFIED/DELETED/BOOKMARK and RELIST (after 410); a non-nil, non-true return ends it.
---Resumes from the last resourceVersion after a dropped connection.
---@param resource string
---@param opts? opsh.k8s.opts|fun(ev: table): any
---@param fn? fun(ev: table): any
---@return any
function k8s.watch(resource, opts, fn) end

---A pod's log (tail, since, timestamps, previous, container, all_containers); with on_line, streamed (follow).
---@param pod string
---@param opts? opsh.k8s.log_options
---@return string|nil
function k8s.log(pod, opts) end

---The Scale; with replicas, set it (read, PUT with resourceVersion, retried on 409).
---@param resource string
---@param name string
---@param replicas? integer
---@param opts? opsh.k8s.opts
---@return table
function k8s.scale(resource, name, replicas, opts) end

---Server-side apply of an object, a list, YAML text, a file or a directory of manifests.
---@param source table|string
---@param opts? {field_manager?: string, force?: boolean, namespace?: string}
---@return table[]
function k8s.apply(source, opts) end

---Pods by phase and reason with restarts: {namespace, name, ready, status, restarts, age, node, phase, reasons, pod}.
---@param opts? {phase?: string, reason?: string, min_restarts?: integer, label_selector?: string|table, namespace?: string, all_namespaces?: boolean, context?: string}
---@return table[]
function k8s.pods(opts) end

---Restart a deployment's pods (the restartedAt annotation, as kubectl).
---@param name string
---@param opts? {resource?: string, namespace?: string}
---@return table
function k8s.rollout_restart(name, opts) end

---Wait until the rollout is complete; {done = true, message}. Raises kind timeout at the deadline.
---@param name string
---@param opts? {timeout?: number, on_progress?: fun(message: string, deployment: table), namespace?: string}
---@return table
function k8s.rollout_status(name, opts) end

---HPA min/max/cpu target (autoscaling/v2, v1 fallback), retried on 409.
---@param name string
---@param opts {min?: integer, max?: integer, cpu?: integer, namespace?: string}
---@return table
function k8s.set_hpa(name, opts) end

---kubectl top nodes: {name, cpu_cores, cpu_percent, memory_bytes, memory_percent, cpu, memory}.
---@param opts? {sort_by?: "cpu"|"memory", label_selector?: string}
---@return table[]
function k8s.top_nodes(opts) end

---kubectl top pods: {namespace, name, cpu_cores, memory_bytes, cpu, memory}.
---@param opts? {sort_by?: "cpu"|"memory", containers?: boolean, label_selector?: string, namespace?: string, all_namespaces?: boolean}
---@return table[]
function k8s.top_pods(opts) end

---cert-manager Certificates: {namespace, name, ready, days_left, not_after, renewal, secret, message}.
---@param opts? {within?: number, namespace?: string, all_namespaces?: boolean}
---@return table[]
function k8s.certificates(opts) end

---Node conditions: {name, ready, memory_pressure, disk_pressure, pid_pressure, unschedulable, version, problems}.
---@param opts? {label_selector?: string}
---@return table[]
function k8s.node_conditions(opts) end

---Events, oldest first; of one object with resource and name.
---@param resource? string|table
---@param name? string
---@param opts? {type?: string, reason?: string, namespace?: string}
---@return table[]
function k8s.events(resource, name, opts) end

---The discovery record of a name (group, version, resource, kind, namespaced, verbs, short_names, subresources).
---@param name string
---@param api_version? string
---@return table
function k8s.resource(name, api_version) end

---Every resource the server serves.
---@return table[]
function k8s.resources() end

---The resource index (memory, disk cache, then the server; force: the server).
---@param force? boolean
---@return table
function k8s.discover(force) end

---@class opsh.k8s.client
---@field server string
---@field context string
---@field namespace string
local client = {}

---The same client with another default namespace.
---@param opts {namespace: string}
---@return opsh.k8s.client
function client:with(opts) end

---One request (a path on the server): raises kind k8s on error statuses; dry-run aware.
---@param method string
---@param path string
---@param opts? table query, json, body, content_type, headers, missing_ok, on_line
---@return table|nil
function client:request(method, path, opts) end

---Get one object (nil with missing_ok when absent), or the list without a name.
---@param resource string|table pods, po, deploy, deployments.apps, "deploy/web", or an object
---@param name? string|table
---@param opts? opsh.k8s.opts
---@return table|nil
function client:get(resource, name, opts) end

---Every page of a list (limit/continue), {apiVersion, kind, metadata, items}; prints as a kubectl table.
---@param resource string
---@param opts? opsh.k8s.opts
---@return opsh.k8s.list
function client:list(resource, opts) end

---Iterate over the items a page at a time (flat memory).
---@param resource string
---@param opts? opsh.k8s.opts
---@return fun(): table|nil
function client:iter(resource, opts) end

---POST an object ([resource,] obj [, opts]).
---@param resource string|table
---@param obj? table
---@param opts? opsh.k8s.opts
---@return table
function client:create(resource, obj, opts) end

---PUT an object ([resource,] obj [, opts]); a stale resourceVersion raises 409 Conflict.
---@param resource string|table
---@param obj? table
---@param opts? opsh.k8s.opts
---@return table
function client:replace(resource, obj, opts) end

---Patch: opts.type "merge" (default), "strategic", "json", "apply" (field_manager, force).
---@param resource string|table
---@param name string
---@param patch table|string
---@param opts? opsh.k8s.opts
---@return table
function client:patch(resource, name, patch, opts) end

---Delete one object (propagation, grace_period, missing_ok).
---@param resource string|table
---@param name? string
---@param opts? opsh.k8s.opts
---@return table|nil
function client:delete(resource, name, opts) end

---DELETE on the collection with label/field selectors.
---@param resource string
---@param opts opsh.k8s.opts
---@return table
function client:delete_collection(resource, opts) end

---The object through its status subresource.
---@param resource string
---@param name string
---@param opts? opsh.k8s.opts
---@return table
function client:status(resource, name, opts) end

---POST a policy/v1 Eviction for the pod.
---@param pod string
---@param opts? opsh.k8s.opts
---@return table
function client:evict(pod, opts) end

---Watch: fn(event) for ADDED/MODIFIED/DELETED/BOOKMARK and RELIST (after 410); a non-nil, non-true return ends it.
---Resumes from the last resourceVersion after a dropped connection.
---@param resource string
---@param opts? opsh.k8s.opts|fun(ev: table): any
---@param fn? fun(ev: table): any
---@return any
function client:watch(resource, opts, fn) end

---A pod's log (tail, since, timestamps, previous, container, all_containers); with on_line, streamed (follow).
---@param pod string
---@param opts? opsh.k8s.log_options
---@return string|nil
function client:log(pod, opts) end

---The Scale; with replicas, set it (read, PUT with resourceVersion, retried on 409).
---@param resource string
---@param name string
---@param replicas? integer
---@param opts? opsh.k8s.opts
---@return table
function client:scale(resource, name, replicas, opts) end

---Server-side apply of an object, a list, YAML text, a file or a directory of manifests.
---@param source table|string
---@param opts? {field_manager?: string, force?: boolean, namespace?: string}
---@return table[]
function client:apply(source, opts) end

---Pods by phase and reason with restarts: {namespace, name, ready, status, restarts, age, node, phase, reasons, pod}.
---@param opts? {phase?: string, reason?: string, min_restarts?: integer, label_selector?: string|table, namespace?: string, all_namespaces?: boolean, context?: string}
---@return table[]
function client:pods(opts) end

---Restart a deployment's pods (the restartedAt annotation, as kubectl).
---@param name string
---@param opts? {resource?: string, namespace?: string}
---@return table
function client:rollout_restart(name, opts) end

---Wait until the rollout is complete; {done = true, message}. Raises kind timeout at the deadline.
---@param name string
---@param opts? {timeout?: number, on_progress?: fun(message: string, deployment: table), namespace?: string}
---@return table
function client:rollout_status(name, opts) end

---HPA min/max/cpu target (autoscaling/v2, v1 fallback), retried on 409.
---@param name string
---@param opts {min?: integer, max?: integer, cpu?: integer, namespace?: string}
---@return table
function client:set_hpa(name, opts) end

---kubectl top nodes: {name, cpu_cores, cpu_percent, memory_bytes, memory_percent, cpu, memory}.
---@param opts? {sort_by?: "cpu"|"memory", label_selector?: string}
---@return table[]
function client:top_nodes(opts) end

---kubectl top pods: {namespace, name, cpu_cores, memory_bytes, cpu, memory}.
---@param opts? {sort_by?: "cpu"|"memory", containers?: boolean, label_selector?: string, namespace?: string, all_namespaces?: boolean}
---@return table[]
function client:top_pods(opts) end

---cert-manager Certificates: {namespace, name, ready, days_left, not_after, renewal, secret, message}.
---@param opts? {within?: number, namespace?: string, all_namespaces?: boolean}
---@return table[]
function client:certificates(opts) end

---Node conditions: {name, ready, memory_pressure, disk_pressure, pid_pressure, unschedulable, version, problems}.
---@param opts? {label_selector?: string}
---@return table[]
function client:node_conditions(opts) end

---Events, oldest first; of one object with resource and name.
---@param resource? string|table
---@param name? string
---@param opts? {type?: string, reason?: string, namespace?: string}
---@return table[]
function client:events(resource, name, opts) end

---The discovery record of a name (group, version, resource, kind, namespaced, verbs, short_names, subresources).
---@param name string
---@param api_version? string
---@return table
function client:resource(name, api_version) end

---Every resource the server serves.
---@return table[]
function client:resources() end

---The resource index (memory, disk cache, then the server; force: the server).
---@param force? boolean
---@return table
function client:discover(force) end

return k8s
