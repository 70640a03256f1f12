/* unit.c — helpers shared by the C unit tests. */
#include "unit.h"

int unit_failures, unit_checks;

int unit_lua_value(lua_State *L, const char *source) {
  int top = lua_gettop(L);
  if (luaL_loadbuffer(L, source, strlen(source), "=test") != LUA_OK) {
    fprintf(stderr, "syntax error: %s\n", lua_tostring(L, -1));
    lua_settop(L, top);
    lua_pushnil(L);
    return 0;
  }
  int status = opsh_runtime_run(L, 0);
  int ok = lua_toboolean(L, top + 1);
  if (!ok) {
    fprintf(stderr, "lua failed (status %d): %s\n", status, luaL_tolstring(L, top + 2, NULL));
    lua_pop(L, 1);
  }
  lua_pushvalue(L, top + 2);
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return ok;
}

int unit_lua(lua_State *L, const char *source) {
  int ok = unit_lua_value(L, source);
  lua_pop(L, 1);
  return ok;
}

int unit_report(const char *name) {
  printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
  return unit_failures ? 1 : 0;
}
