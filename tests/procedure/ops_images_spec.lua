-- opsh.ops.images: image references without their registry host, and which manifest a set of
-- references keeps (the rule weekly-maintenance's ACR cleanup applies).
local images = require("opsh.ops.images")

describe("opsh.ops.images", function()
  it("parses references: host removed, tag, digest, runtime prefix, default tag", function()
    local cases = {
      {"acr.azurecr.io/team/app:1.2@sha256:ab12", {path = "team/app", tag = "1.2", digest = "sha256:ab12"}},
      {"nginx", {path = "nginx", tag = "latest"}},
      {"library/redis:7.2", {path = "library/redis", tag = "7.2"}},
      {"localhost/x", {path = "x", tag = "latest"}},
      {"registry.local:5000/a/b:v1", {path = "a/b", tag = "v1"}},
      {"docker-pullable://acr.io/web@sha256:ff00", {path = "web", digest = "sha256:ff00"}},
      {"acr.azurecr.io/web@sha256:ff00", {path = "web", digest = "sha256:ff00"}},
    }
    for _, c in ipairs(cases) do assert.same(c[2], images.parse(c[1]), c[1]) end
    assert.is_nil(images.parse(""))
    assert.is_nil(images.parse(nil))
  end)

  it("a manifest is in use through its digest or any of its tags, on any registry host", function()
    local set = {["team/app:1.2"] = "pod prod/a", ["team/app@sha256:ee"] = "replicaset prod/b"}
    assert.equal("replicaset prod/b", images.user(set, "team/app", "sha256:ee", {}))
    assert.equal("pod prod/a", images.user(set, "team/app", "sha256:dd", {"1.1", "1.2"}))
    assert.is_nil(images.user(set, "team/app", "sha256:dd", {"1.1"}))
    assert.is_nil(images.user(set, "team/other", "sha256:ee", {"1.2"}))
  end)

  it("lists the references of every kind the cluster serves and names the kinds it does not", function()
    local items = {
      pods = {{kind = "Pod", metadata = {namespace = "p", name = "web-1"},
        spec = {containers = {{image = "r.io/web:2"}}, initContainers = {{image = "r.io/init:1"}}},
        status = {containerStatuses = {{imageID = "r.io/web@sha256:aa"}}}}},
      replicasets = {{kind = "ReplicaSet", metadata = {namespace = "p", name = "web-old"},
        spec = {template = {spec = {containers = {{image = "r.io/web:1"}}}}}}},
      cronjobs = {{kind = "CronJob", metadata = {namespace = "p", name = "report"},
        spec = {jobTemplate = {spec = {template = {spec = {containers = {{image = "r.io/report:3"}}}}}}}}},
    }
    local client = {
      resource = function(_, kind)
        if not items[kind] then
          error({kind = "k8s", reason = "NotFound", resource = kind, message = "no " .. kind}, 0)
        end
        return {}
      end,
      iter = function(_, kind)
        local i = 0
        return function() i = i + 1; return items[kind][i] end
      end,
    }
    local set, skipped = images.referenced(client)
    assert.same({["web:2"] = "pod p/web-1", ["init:1"] = "pod p/web-1", ["web@sha256:aa"] = "pod p/web-1",
      ["web:1"] = "replicaset p/web-old", ["report:3"] = "cronjob p/report"}, set)
    assert.same({"deployments", "statefulsets", "daemonsets", "jobs"}, skipped)
    -- a kind the cluster serves but the caller may not list stops it: nothing can be called unused
    client.resource = function() error({kind = "k8s", code = 403, reason = "Forbidden", message = "forbidden"}, 0) end
    local ok, err = pcall(images.referenced, client)
    assert.is_false(ok)
    assert.equal("Forbidden", err.reason)
  end)
end)
