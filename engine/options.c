/*
** options.c — fields of an options table, the way every binding reads them: absent (nil) gives
** the default, a value of the wrong type is a {kind = "usage"} error naming the option.
** Strings stay referenced by the table, which outlives the call that reads them.
*/
#include <math.h>
#include <stdlib.h>
#include "opsh.h"

/* [-0, +0, v] raise: "<what>: option '<name>' must be <expected>, not a <type>" (value at the top) */
static int wrong_type(lua_State *L, const char *what, const char *name, const char *expected) {
  return opsh_error(L, "usage", "%s: option '%s' must be %s, not a %s", what, name, expected,
                    luaL_typename(L, -1));
}

const char *opsh_opt_string(lua_State *L, int idx, const char *name, size_t *len, const char *what) {
  int t = lua_getfield(L, idx, name);
  const char *s = NULL;
  if (t == LUA_TSTRING) s = lua_tolstring(L, -1, len);
  else if (t != LUA_TNIL) wrong_type(L, what, name, "a string");
  lua_pop(L, 1);
  return s;
}

const char *opsh_opt_secret(lua_State *L, int idx, const char *name, size_t *len, const char *what) {
  int t = lua_getfield(L, idx, name);
  const char *s = NULL;
  if (t == LUA_TSTRING || opsh_is_secret(L, -1)) s = opsh_secret_check(L, -1, len);
  else if (t != LUA_TNIL) wrong_type(L, what, name, "a string or an opsh.secret");
  lua_pop(L, 1);
  return s;
}

lua_Number opsh_opt_number(lua_State *L, int idx, const char *name, lua_Number def, const char *what) {
  int t = lua_getfield(L, idx, name);
  lua_Number v = def;
  if (t == LUA_TNUMBER) v = lua_tonumber(L, -1);
  else if (t != LUA_TNIL) wrong_type(L, what, name, "a number");
  lua_pop(L, 1);
  return v;
}

uint64_t opsh_opt_duration(lua_State *L, int idx, const char *name, lua_Number def, const char *what) {
  lua_Number seconds = opsh_opt_number(L, idx, name, def, what);
  if (isnan(seconds) || seconds < 0 || seconds > OPSH_DURATION_MAX) {
    lua_pushfstring(L, "%s: option '%s'", what, name);
    return opsh_duration_ms(L, seconds, lua_tostring(L, -1));   /* raises */
  }
  return opsh_duration_ms(L, seconds, what);
}

static void free_block(uv_handle_t *h) { free(h->data); }

void opsh_close_free(uv_handle_t *h, void *block) {
  h->data = block;
  uv_close(h, free_block);
}
