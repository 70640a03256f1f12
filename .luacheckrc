-- luacheck for the Lua library and the bundled procedures (`make lint`, part of `make test`).
std = "lua54"
max_line_length = false
unused_args = false        -- callbacks keep the full signature (tw, rec, ...) on purpose
ignore = {"431", "432"}    -- shadowing an upvalue: local names that read best in their block
