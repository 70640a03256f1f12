-- The local twin's secondary region, the failover target of `twin` (as `secondary` is production's):
-- the twin's streaming replica as psql-legal-production-replica and the aks-legal-production-secondary
-- cluster. Built from the running twin's state in $OPSH_TWIN_DIR (default ~/.local/state/opsh/twin).
return require("opsh.twin").environment(nil, "secondary")
