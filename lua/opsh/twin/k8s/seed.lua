-- opsh.twin.k8s.seed: a cluster as the runbook's production is (opsh.twin.platform's names): namespace
-- production with the seven deployments (their ReplicaSets and Running pods, created days ago), HPA
-- web-hpa, Failed and Succeeded pods, an OOMKilled pod with restarts, a cert-manager Certificate near
-- expiry and a healthy one (and the CRD that serves them), config maps, secrets, services and events.
-- Runs once per cluster: a store that already has the cluster's namespaces is left as it is.
local crypto = require("opsh.crypto")
local json = require("opsh.json")
local controller = require("opsh.twin.k8s.controller")
local defaults = require("opsh.twin.k8s.defaults")
local kinds = require("opsh.twin.k8s.kinds")
local objects = require("opsh.twin.k8s.objects")
local platform = require("opsh.twin.platform")
local time = require("opsh.time")

local M = {}

local arr = json.array
local function res(name, group, version) return kinds.find(group or "", version or (group == "apps" and "v1") or (group == "autoscaling" and "v2") or "v1", name) end
local function iso(t) return time.format(t, {utc = true}) end

M.REPLICAS = {production = {web = 3, gateway = 3, ["document-service"] = 2, ["ai-service"] = 3, ["task-service"] = 2,
  ["integration-service"] = 1, ["notification-service"] = 1},
  secondary = {web = 2, gateway = 2, ["document-service"] = 1, ["ai-service"] = 1, ["task-service"] = 1,
  ["integration-service"] = 1, ["notification-service"] = 1}}

local PORTS = {web = 3000, gateway = 8080}

local function meta(name, ns, created, labels)
  return {name = name, namespace = ns, uid = objects.uid(), creationTimestamp = created, labels = labels}
end

-- the registry's seeded image of a deployment (opsh.twin.seed: its newest tag; document-service runs an
-- older one, so a registry cleanup meets an image in use beyond the newest few); others a tag of their own
local PINNED = {["document-service"] = "1.4.0"}
local function image_of(acr, name)
  local seed = require("opsh.twin.seed")
  for _, repo in ipairs(seed.repositories) do
    if repo:match("[^/]+$") == name then
      return string.format("%s.azurecr.io/%s:%s", acr, repo, PINNED[name] or ("1." .. seed.tags_per_repository .. ".0"))
    end
  end
  return string.format("%s.azurecr.io/%s:1.8.3", acr, name)
end

local function deployment(ctx, name, replicas, created)
  local acr = platform.region("production").acr
  local port = PORTS[name] or 8080
  local labels = {app = name, ["app.kubernetes.io/part-of"] = "legal-platform"}
  local d = {apiVersion = "apps/v1", kind = "Deployment", metadata = meta(name, platform.namespace, created, labels),
    spec = {replicas = replicas, selector = {matchLabels = {app = name}},
      template = {metadata = {labels = {app = name, ["app.kubernetes.io/part-of"] = "legal-platform"}},
        spec = {containers = arr({{name = name, image = image_of(acr, name),
          ports = arr({{containerPort = port, name = "http", protocol = "TCP"}}),
          env = arr({{name = "NODE_ENV", value = "production"}, {name = "DATABASE_URL", valueFrom = {secretKeyRef = {name = "database-credentials", key = "url"}}}}),
          resources = {requests = {cpu = "250m", memory = name == "ai-service" and "1Gi" or "512Mi"},
            limits = {cpu = "1", memory = name == "ai-service" and "1Gi" or "1Gi"}},
          readinessProbe = {httpGet = {path = "/healthz", port = port}, periodSeconds = 10}}})}}}}
  d.metadata.generation = 1
  d.metadata.annotations = {["deployment.kubernetes.io/revision"] = "1"}
  defaults.on_create(res("deployments", "apps"), d)
  local _ = ctx
  return d
end

--- cluster(ctx): seed ctx's cluster unless it has namespaces already
function M.cluster(ctx)
  local nsr = res("namespaces")
  if #(objects.entries(ctx, nsr, nil)) > 0 then return end
  local now = time.now()
  local ns = platform.namespace
  local long_ago = iso(now - 86400 * 41)
  local days_ago = iso(now - 86400 * 6 - 3600 * 5)
  local changes = {}
  local function add(r, o) changes[#changes + 1] = {r = r, obj = o} end
  for _, n in ipairs({"default", "kube-system", "kube-public", "cert-manager", ns}) do
    local o = {apiVersion = "v1", kind = "Namespace", metadata = meta(n, nil, long_ago)}
    defaults.on_create(nsr, o)
    add(nsr, o)
  end
  controller.ensure_nodes(ctx, long_ago)
  -- deployments, their ReplicaSets and Running pods
  local dr, rsr, podr = res("deployments", "apps"), res("replicasets", "apps"), res("pods")
  local replicas = M.REPLICAS[ctx.cluster] or M.REPLICAS.secondary
  local svr = res("services")
  local evr = res("events")
  local nev = 0
  local function event(involved, typ, reason, msg, source, count, first, last)
    nev = nev + 1
    local name = involved.name .. "." .. string.format("%016x", tonumber(crypto.sha256_hex(involved.name .. reason .. nev):sub(1, 13), 16))
    add(evr, {apiVersion = "v1", kind = "Event", metadata = meta(name, ns, first),
      involvedObject = involved, reason = reason, message = msg, type = typ, count = count or 1,
      firstTimestamp = first, lastTimestamp = last or first, source = {component = source},
      reportingComponent = source, reportingInstance = ""})
  end
  for _, name in ipairs(platform.deployments) do
    local d = deployment(ctx, name, replicas[name] or 1, long_ago)
    local hash = controller.template_hash(d.spec.template)
    local rs = controller.rs_for(d, hash, 1, long_ago)
    local st_pods = {}
    for i = 1, d.spec.replicas do
      local pname = controller.pod_name(rs.metadata.name, ctx.cluster .. name .. i)
      local pod = controller.pod_for(ctx, d, rs, pname, days_ago)
      pod.status = controller.running_status(pod, days_ago)
      if name == "ai-service" and i == d.spec.replicas then
        -- the OOMKilled one: restarted 7 times, its last run killed for memory a minute ago
        local cs = pod.status.containerStatuses[1]
        cs.ready, cs.started, cs.restartCount = false, false, 7
        cs.state = {terminated = {exitCode = 137, reason = "OOMKilled", startedAt = iso(now - 400), finishedAt = iso(now - 60),
          containerID = cs.containerID}}
        cs.lastState = {terminated = {exitCode = 137, reason = "OOMKilled", startedAt = iso(now - 1500), finishedAt = iso(now - 700),
          containerID = cs.containerID}}
        for _, c in ipairs(pod.status.conditions) do
          if c.type == "Ready" or c.type == "ContainersReady" then c.status = "False"; c.reason = "ContainersNotReady" end
        end
        event({kind = "Pod", name = pname, namespace = ns, uid = pod.metadata.uid, apiVersion = "v1", fieldPath = "spec.containers{ai-service}"},
          "Warning", "BackOff", "Back-off restarting failed container ai-service in pod " .. pname .. "_" .. ns .. "(" .. pod.metadata.uid .. ")",
          "kubelet", 23, iso(now - 5400), iso(now - 30))
        event({kind = "Node", name = pod.spec.nodeName, uid = pod.spec.nodeName, apiVersion = "v1"}, "Warning", "OOMKilling",
          "Memory cgroup out of memory: Killed process 41872 (node) total-vm:2314532kB, anon-rss:1046812kB", "kernel-monitor", 7, iso(now - 5400), iso(now - 60))
      end
      st_pods[#st_pods + 1] = pod
      add(podr, pod)
    end
    local ready = 0
    for _, p in ipairs(st_pods) do if p.status.containerStatuses[1].ready then ready = ready + 1 end end
    rs.status = {replicas = #st_pods, fullyLabeledReplicas = #st_pods, readyReplicas = ready, availableReplicas = ready, observedGeneration = 1}
    d.status = {observedGeneration = 1, replicas = #st_pods, updatedReplicas = #st_pods, readyReplicas = ready, availableReplicas = ready,
      unavailableReplicas = (#st_pods - ready > 0) and (#st_pods - ready) or nil,
      conditions = arr({{type = "Available", status = ready >= d.spec.replicas and "True" or "False",
        reason = ready >= d.spec.replicas and "MinimumReplicasAvailable" or "MinimumReplicasUnavailable",
        message = ready >= d.spec.replicas and "Deployment has minimum availability." or "Deployment does not have minimum availability.",
        lastUpdateTime = days_ago, lastTransitionTime = days_ago},
        {type = "Progressing", status = "True", reason = "NewReplicaSetAvailable",
          message = string.format('ReplicaSet "%s" has successfully progressed.', rs.metadata.name),
          lastUpdateTime = days_ago, lastTransitionTime = long_ago}})}
    add(dr, d)
    add(rsr, rs)
    event({kind = "Deployment", name = name, namespace = ns, uid = d.metadata.uid, apiVersion = "apps/v1"}, "Normal",
      "ScalingReplicaSet", string.format("Scaled up replica set %s from 0 to %d", rs.metadata.name, d.spec.replicas),
      "deployment-controller", 1, iso(now - 3000), iso(now - 3000))
    local port = PORTS[name] or 8080
    local svc = {apiVersion = "v1", kind = "Service", metadata = meta(name, ns, long_ago, {app = name}),
      spec = {type = name == "gateway" and "LoadBalancer" or "ClusterIP", selector = {app = name},
        ports = arr({{name = "http", port = 80, targetPort = port, protocol = "TCP"}})}}
    defaults.on_create(svr, svc)
    if name == "gateway" then svc.status = {loadBalancer = {ingress = arr({{ip = ctx.cluster == "production" and "20.61.14.201" or "20.82.3.77"}})}} end
    add(svr, svc)
  end
  local k8s_svc = {apiVersion = "v1", kind = "Service", metadata = meta("kubernetes", "default", long_ago,
    {component = "apiserver", provider = "kubernetes"}), spec = {type = "ClusterIP", clusterIP = "192.0.2.1",
    clusterIPs = arr({"192.0.2.1"}), ports = arr({{name = "https", port = 443, targetPort = 443, protocol = "TCP"}})}}
  defaults.on_create(svr, k8s_svc)
  add(svr, k8s_svc)
  -- batch pods that ended: two Failed, two Succeeded
  local nodes = controller.user_nodes(ctx)
  local function finished(name, phase, reason, code, ago)
    local started, ended = iso(now - ago - 120), iso(now - ago)
    local pod = {apiVersion = "v1", kind = "Pod", metadata = meta(name, ns, started, {app = "report-job", ["job-name"] = name:match("^(.*)%-[^-]+$")}),
      spec = {nodeName = nodes[1], restartPolicy = "Never", serviceAccountName = "default", schedulerName = "default-scheduler",
        containers = arr({{name = "report", image = platform.region("production").acr .. ".azurecr.io/report-job:1.2.0"}})},
      status = {phase = phase, startTime = started, hostIP = "198.51.100.104", qosClass = "BestEffort",
        containerStatuses = arr({{name = "report", ready = false, started = false, restartCount = 0,
          image = platform.region("production").acr .. ".azurecr.io/report-job:1.2.0", imageID = "",
          state = {terminated = {exitCode = code, reason = reason, startedAt = started, finishedAt = ended}}, lastState = {}}})}}
    add(podr, pod)
  end
  finished("report-job-29011450-x7k2p", "Failed", "Error", 1, 7200)
  finished("report-job-29011510-m4q9d", "Failed", "Error", 2, 3600)
  finished("db-migrate-29011200-b8wz5", "Succeeded", "Completed", 0, 86400)
  finished("report-job-29011570-c2n6t", "Succeeded", "Completed", 0, 1800)
  -- HPA web-hpa
  local hr = res("horizontalpodautoscalers", "autoscaling")
  local hpa = {apiVersion = "autoscaling/v2", kind = "HorizontalPodAutoscaler", metadata = meta("web-hpa", ns, long_ago),
    spec = {scaleTargetRef = {apiVersion = "apps/v1", kind = "Deployment", name = "web"}, minReplicas = 3, maxReplicas = 10,
      metrics = arr({{type = "Resource", resource = {name = "cpu", target = {type = "Utilization", averageUtilization = 70}}}})},
    status = {currentReplicas = replicas.web, desiredReplicas = replicas.web,
      currentMetrics = arr({{type = "Resource", resource = {name = "cpu", current = {averageUtilization = 45, averageValue = "112m"}}}}),
      conditions = arr({{type = "AbleToScale", status = "True", reason = "ReadyForNewScale", message = "recommended size matches current size", lastTransitionTime = long_ago},
        {type = "ScalingActive", status = "True", reason = "ValidMetricFound", message = "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)", lastTransitionTime = long_ago},
        {type = "ScalingLimited", status = "False", reason = "DesiredWithinRange", message = "the desired count is within the acceptable range", lastTransitionTime = long_ago}})}}
  hpa.metadata.generation = 1
  add(hr, hpa)
  -- cert-manager: the CRD and two Certificates (one renews in 5 days and is failing to)
  local crdr = res("customresourcedefinitions", "apiextensions.k8s.io")
  add(crdr, {apiVersion = "apiextensions.k8s.io/v1", kind = "CustomResourceDefinition",
    metadata = meta("certificates.cert-manager.io", nil, long_ago, {["app.kubernetes.io/name"] = "cert-manager"}),
    spec = {group = "cert-manager.io", scope = "Namespaced", names = {plural = "certificates", singular = "certificate",
      kind = "Certificate", listKind = "CertificateList", shortNames = arr({"cert", "certs"}), categories = arr({"cert-manager"})},
      versions = arr({{name = "v1", served = true, storage = true, subresources = {status = {}},
        schema = {openAPIV3Schema = {type = "object", ["x-kubernetes-preserve-unknown-fields"] = true}},
        additionalPrinterColumns = arr({{jsonPath = '.status.conditions[?(@.type=="Ready")].status', name = "Ready", type = "string"},
          {jsonPath = ".spec.secretName", name = "Secret", type = "string"},
          {jsonPath = ".spec.issuerRef.name", name = "Issuer", priority = 1, type = "string"},
          {jsonPath = '.status.conditions[?(@.type=="Ready")].message', name = "Status", priority = 1, type = "string"},
          {jsonPath = ".metadata.creationTimestamp", name = "Age", type = "date"}})}})},
    status = {acceptedNames = {plural = "certificates", kind = "Certificate"}, storedVersions = arr({"v1"})}})
  local certr = res("certificates", "cert-manager.io")
  local secr = res("secrets")
  local zone = platform.region("production").dns.zone
  local function cert(name, secret, dns, not_after, ready, msg, renewal)
    add(certr, {apiVersion = "cert-manager.io/v1", kind = "Certificate", metadata = {name = name, namespace = ns, uid = objects.uid(),
      creationTimestamp = long_ago, generation = 1},
      spec = {secretName = secret, dnsNames = arr(dns), duration = "2160h0m0s", renewBefore = "360h0m0s",
        issuerRef = {name = "letsencrypt-prod", kind = "ClusterIssuer", group = "cert-manager.io"}},
      status = {conditions = arr({{type = "Ready", status = ready, reason = ready == "True" and "Ready" or "Expiring",
        message = msg, lastTransitionTime = long_ago, observedGeneration = 1}}),
        notBefore = iso(not_after - 90 * 86400), notAfter = iso(not_after), renewalTime = iso(renewal), revision = 3}})
    add(secr, {apiVersion = "v1", kind = "Secret", type = "kubernetes.io/tls", metadata = {name = secret, namespace = ns,
      uid = objects.uid(), creationTimestamp = long_ago, annotations = {["cert-manager.io/certificate-name"] = name,
      ["cert-manager.io/issuer-name"] = "letsencrypt-prod", ["cert-manager.io/issuer-kind"] = "ClusterIssuer"}},
      data = {["tls.crt"] = crypto.base64_encode("-----BEGIN CERTIFICATE-----\n(twin)\n-----END CERTIFICATE-----\n"),
        ["tls.key"] = crypto.base64_encode("-----BEGIN PRIVATE KEY-----\n(twin)\n-----END PRIVATE KEY-----\n")}})
  end
  cert("legal-platform-tls", "legal-platform-tls", {zone, "www." .. zone}, now + 61 * 86400, "True",
    "Certificate is up to date and has not expired", now + 46 * 86400)
  cert("api-legal-platform-tls", "api-legal-platform-tls", {"api." .. zone}, now + 5 * 86400 + 7200, "True",
    "Certificate is up to date and has not expired", now - 10 * 86400)
  event({kind = "Certificate", name = "api-legal-platform-tls", namespace = ns, apiVersion = "cert-manager.io/v1"}, "Warning", "Failed",
    "The certificate request has failed to complete and will be retried: Failed to wait for order resource \"api-legal-platform-tls-1-2314\" to become ready: order is in \"errored\" state: Failed to finalize Order",
    "cert-manager-certificates-issuing", 4, iso(now - 86400 * 2), iso(now - 3600 * 3))
  -- configuration
  local cmr = res("configmaps")
  add(cmr, {apiVersion = "v1", kind = "ConfigMap", metadata = meta("app-config", ns, long_ago, {app = "legal-platform"}),
    data = {LOG_LEVEL = "info", FEATURE_AI_SUMMARY = "true", REDIS_TLS = "true", API_BASE_URL = "https://api." .. zone,
      REQUEST_TIMEOUT_MS = "30000"}})
  add(cmr, {apiVersion = "v1", kind = "ConfigMap", metadata = meta("kube-root-ca.crt", ns, long_ago),
    data = {["ca.crt"] = "-----BEGIN CERTIFICATE-----\n(twin cluster CA)\n-----END CERTIFICATE-----\n"}})
  add(secr, {apiVersion = "v1", kind = "Secret", type = "Opaque", metadata = meta("database-credentials", ns, long_ago, {app = "legal-platform"}),
    data = {username = crypto.base64_encode("adminuser"), url = crypto.base64_encode("postgresql://adminuser@" .. platform.region("production").postgres.server .. ".postgres.database.azure.com:5432/legaldb?sslmode=require"),
      password = crypto.base64_encode("twin-" .. crypto.sha256_hex(ctx.cluster .. "db"):sub(1, 20))}})
  add(secr, {apiVersion = "v1", kind = "Secret", type = "Opaque", metadata = meta("redis-credentials", ns, long_ago, {app = "legal-platform"}),
    data = {host = crypto.base64_encode(platform.region("production").redis.name .. ".redis.cache.windows.net"),
      key = crypto.base64_encode("twin-" .. crypto.sha256_hex(ctx.cluster .. "redis"):sub(1, 20))}})
  objects.txn(ctx, changes)
end

return M
