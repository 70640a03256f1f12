/*
** error.c — structured errors: tables {kind=, message=, status=, code=, request_id=, ...}
** with the opsh.error metatable, whose __tostring gives one line.
*/
#include <stdarg.h>
#include <string.h>
#include "opsh.h"
#include "runtime.h"

/* [-0, +1, m] the one-line form: "kind: message (status 404, code NotFound, request-id X)" */
static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_getfield(L, 1, "message");
  const char *msg = lua_tostring(L, -1);
  lua_pop(L, 1);
  luaL_addstring(&b, msg ? msg : "(no message)");
  static const char *const extras[][2] = {
    {"status", "status "}, {"code", "code "}, {"request_id", "request-id "}, {NULL, NULL}
  };
  int first = 1;
  for (int i = 0; extras[i][0]; i++) {
    lua_getfield(L, 1, extras[i][0]);
    if (!lua_isnil(L, -1)) {
      const char *v = luaL_tolstring(L, -1, NULL);
      lua_pop(L, 1);
      if (!msg || !strstr(msg, v) || i == 2) {
        luaL_addstring(&b, first ? " (" : ", ");
        luaL_addstring(&b, extras[i][1]);
        luaL_addstring(&b, v);
        first = 0;
      }
    }
    lua_pop(L, 1);
  }
  if (!first) luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  /* one line: fold newlines a server may have put in a message */
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (memchr(s, '\n', len)) {
    luaL_gsub(L, s, "\n", " ");
    lua_remove(L, -2);
  }
  return 1;
}

void opsh_error_meta(lua_State *L) {
  if (luaL_newmetatable(L, OPSH_ERROR_META)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "opsh.error");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

/* [-0, +1, m] */
static void error_vpush(lua_State *L, const char *kind, const char *fmt, va_list ap) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushvfstring(L, fmt, ap);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, OPSH_ERROR_META);
}

void opsh_error_push(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vpush(L, kind, fmt, ap);
  va_end(ap);
}

int opsh_error(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_vpush(L, kind, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

void opsh_error_setint(lua_State *L, const char *name, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, name);
}

void opsh_error_setstr(lua_State *L, const char *name, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, name);
}

int opsh_error_is(lua_State *L, int idx, const char *kind) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, OPSH_ERROR_META);
  int is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (is && kind) {
    lua_getfield(L, idx, "kind");
    const char *k = lua_tostring(L, -1);
    is = k && strcmp(k, kind) == 0;
    lua_pop(L, 1);
  }
  return is;
}

/* [-1, +1, e] the description of the value at 1, run protected by opsh_error_describe */
static int describe(lua_State *L) {
  if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "__tostring returned no string");
    return 1;
  }
  if (lua_istable(L, 1)) {
    int has_kind = lua_getfield(L, 1, "kind") == LUA_TSTRING;
    if (lua_getfield(L, 1, "message") == LUA_TSTRING) {
      if (has_kind) lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
      return 1;
    }
    lua_pop(L, 2);
  }
  luaL_tolstring(L, 1, NULL);
  return 1;
}

const char *opsh_error_describe(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    lua_pushvalue(L, idx);
    return lua_tostring(L, -1);
  }
  if (t == LUA_TNIL) {
    lua_pushliteral(L, "(error object is a nil value)");
    return lua_tostring(L, -1);
  }
  lua_pushcfunction(L, describe);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
  return lua_tostring(L, -1);
}
