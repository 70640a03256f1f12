/* test_output.c — table and TSV rendering, and secret redaction in every place a value shows. */
#include "unit.h"

int main(void) {
  lua_State *L = opsh_runtime_new();
  CHECK(unit_lua(L, "out = require('opsh.out') opsh = require('opsh')"));

  CHECK_LUA(L, "return out.render({{name = 'web', ready = 3, up = true}, "
                          "{name = 'document-service', ready = 10, up = false}}, "
                          "{columns = {'name', {'ready', 'READY PODS'}, 'up'}})",
            "NAME               READY PODS   UP\n"
            "web                3            true\n"
            "document-service   10           false\n");

  CHECK_LUA(L, "return out.render({{a = 'x\\ty', b = 'two\\nlines'}}, {format = 'tsv'})",
            "x\\ty\ttwo\\nlines\n");

  CHECK_LUA(L, "return out.render({}, {})",
            "(none)\n");

  CHECK_LUA(L, "return out.render({{spec = {replicas = 2}}}, {columns = {'spec.replicas'}})",
            "SPEC REPLICAS\n2\n");

  /* secrets: table, TSV, nested values, error messages and tostring never show the bytes */
  CHECK(unit_lua_value(L, "local s = opsh.secret('p@ssw0rd-123') "
                          "return out.render({{user = 'admin', password = s}}, {}) .. "
                          "out.render({{password = s}}, {format = 'tsv'}) .. "
                          "out.render({{conn = {password = s}}}, {format = 'tsv'}) .. tostring(s)"));
  CHECK(strstr(lua_tostring(L, -1), "p@ssw0rd") == NULL);
  CHECK(strstr(lua_tostring(L, -1), "<redacted>") != NULL);
  lua_pop(L, 1);

  CHECK(!unit_lua_value(L, "local s = opsh.secret('p@ssw0rd-123') return 'password=' .. s"));
  CHECK(strstr(luaL_tolstring(L, -1, NULL), "p@ssw0rd") == NULL);
  lua_pop(L, 2);

  /* the C side reads the bytes; Lua sees only <redacted> and the length */
  opsh_secret_push(L, "k3y", 3);
  size_t len;
  const char *raw = opsh_secret_check(L, -1, &len);
  CHECK(len == 3 && memcmp(raw, "k3y", 3) == 0);
  CHECK_STR(luaL_tolstring(L, -1, NULL), "<redacted>");
  lua_pop(L, 2);

  opsh_runtime_close(L);
  return unit_report("test_output");
}
