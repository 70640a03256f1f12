-- The local twin (`opsh twin up`): built from the running twin's state in $OPSH_TWIN_DIR
-- (default ~/.local/state/opsh/twin).
return require("opsh.twin").environment()
