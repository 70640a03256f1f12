-- The API twins the twin's API process serves: module names, each returning
--   {name = "kubernetes",
--    mount = function(srv, twin) ... end,          -- add routes to the opsh.server handle
--    environment = function(twin, env) ... end,    -- optional: fill `--env twin` fields (endpoints)
--    shell = function(twin, exports) ... end}      -- optional: `opsh twin env --shell` variables
-- `twin` gives dir, state (read with twin.read_state(), change with twin.update_state(fn)) and ca paths.
-- More can be added without rebuilding: OPSH_TWIN_APIS="mod.one,mod.two" (modules found in $OPSH_PATH).
return {}
