-- The API twins the twin's API process (`opsh twin serve`) mounts: module names, each returning
--   {name = "kubernetes",
--    listener = true,                                   -- optional: a port of its own (its own endpoint)
--    mount = function(srv, twin) ... end,               -- add routes to the opsh.server handle
--    environment = function(twin, env, endpoint) end,   -- optional: fill `--env twin` fields (endpoints)
--    shell = function(twin, exports, endpoint) end}     -- optional: `opsh twin env --shell` variables
-- In mount, `twin` gives dir, ca paths, store (opsh.twin.store: get, list, put, patch, delete, txn,
-- subscribe), read_state(), update_state(fn) and endpoint(name). See docs/twin.md.
-- More can be added without rebuilding: OPSH_TWIN_APIS="mod.one,mod.two" (modules found in $OPSH_PATH).
return {
  "opsh.twin.arm",
  "opsh.twin.k8s",
  "opsh.twin.keyvault",
  "opsh.twin.query",
  "opsh.twin.acr",
}
