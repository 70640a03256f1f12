-- k8s-backup: the cluster's namespaced objects as restorable YAML in Blob, Secrets excluded.
return {
  description = "Back up Kubernetes objects to Blob storage as restorable YAML\n"
    .. "Replaces the runbook's `kubectl get all -o yaml > file` + upload (Backup and Recovery). One blob per "
    .. "namespace and kind, `<cluster>/<UTC time>/<namespace>/<kind>.yaml`, a `kind: List` with server-set "
    .. "fields removed (status, uid, resourceVersion, managedFields...) so `kubectl apply -f` restores it. "
    .. "Objects owned by another (ReplicaSets, Pods of a Deployment) are left out: their owner recreates them. "
    .. "Secrets are left out (--secrets exclude), or sealed (--secrets encrypt: AES-256-GCM with a key held in "
    .. "Key Vault, `<namespace>/secret.yaml.sealed`, the key's name and version in the blob's metadata).",
  categories = {"backup"},
  flags = {"mutating"},
  args = {
    namespace = {help = "namespaces to back up (default: every namespace but kube-*)", type = "list"},
    container = {help = "blob container (default: the environment's storage.backup_container)"},
    prefix = {help = "blob name prefix (default: <cluster>/<UTC time>)"},
    secrets = {help = "what to do with Secrets", choices = {"exclude", "encrypt"}, default = "exclude"},
    key_secret = {help = "the Key Vault secret holding the AES-256 key Secrets are sealed with (created "
      .. "when missing)", default = "k8s-backup-key"},
  },
  examples = {"opsh --env production run k8s-backup", "opsh --env production run k8s-backup --namespace production"},
  run = function(ctx, args)
    local yaml = require("opsh.yaml")
    local json = require("opsh.json")
    local backup = require("opsh.ops.backup")
    local scan = require("opsh.ops.scan")
    local envt = ctx.env
    local c = require("opsh.k8s").client{}
    local container = args.container or (envt.storage and envt.storage.backup_container) or "backups"
    local prefix = args.prefix or string.format("%s/%s", envt.aks and envt.aks.cluster or "cluster",
      os.date("!%Y%m%dT%H%M%SZ"))
    local account = backup.blob_account(envt)

    local namespaces = {}
    if args.namespace and #args.namespace > 0 then
      for _, n in ipairs(args.namespace) do namespaces[#namespaces + 1] = n end
    else
      for ns in c:iter("namespaces") do
        if not ns.metadata.name:match("^kube%-") then namespaces[#namespaces + 1] = ns.metadata.name end
      end
    end
    local kinds = {"deployments", "statefulsets", "daemonsets", "cronjobs", "jobs", "services", "configmaps",
      "serviceaccounts", "persistentvolumeclaims", "ingresses", "horizontalpodautoscalers", "networkpolicies",
      "poddisruptionbudgets", "roles", "rolebindings"}
    local seal = args.secrets == "encrypt"
    if seal then kinds[#kinds + 1] = "secrets" end
    local rows = {}
    ctx.step("ensure container " .. container, function() backup.ensure_container(account, container) end, {target = container})
    local key, key_version
    if seal then
      key, key_version = ctx.step("backup key " .. args.key_secret .. " in Key Vault", function()
        return backup.backup_key(require("opsh.azure").keyvault(envt), args.key_secret)
      end, {target = args.key_secret})
    end
    for _, ns in ipairs(namespaces) do
      local objs, skipped = scan.live(c, kinds, {namespace = ns})
      if #skipped > 0 then ctx.log.debug("kinds not served", {kinds = table.concat(skipped, ",")}) end
      local by_kind, order = {}, {}
      for _, o in ipairs(objs) do
        local k = o.kind or "Unknown"
        -- a service account's token Secret is the cluster's to make again
        if k ~= "Secret" or (seal and o.type ~= "kubernetes.io/service-account-token") then
          if not by_kind[k] then by_kind[k] = {}; order[#order + 1] = k end
          table.insert(by_kind[k], backup.restorable(o))
        end
      end
      table.sort(order)
      for _, k in ipairs(order) do
        local name = string.format("%s/%s/%s.yaml", prefix, ns, k:lower())
        local text = yaml.encode({apiVersion = "v1", kind = "List", items = json.array(by_kind[k])})
        local put = {data = text, content_type = "application/yaml", metadata = {objects = tostring(#by_kind[k])}}
        if k == "Secret" then
          name = name .. ".sealed"
          put.data = require("opsh.crypto").seal(key, text, container .. "/" .. name)
          put.content_type = "application/octet-stream"
          put.metadata.cipher, put.metadata.key_secret, put.metadata.key_version = "AES-256-GCM", args.key_secret,
            key_version
          text = put.data
        end
        ctx.step("upload " .. name, function() return account:put(container, name, put) end, {target = name})
        rows[#rows + 1] = {namespace = ns, kind = k, objects = #by_kind[k], bytes = #text, blob = name}
      end
    end
    ctx.out(rows, {columns = {"namespace", "kind", "objects", "bytes", "blob"}})
    if not seal then ctx.log.info("Secrets were not backed up (--secrets exclude)") end
  end,
}
