/*
** check.c — argument checks that raise structured errors. opsh.h points lauxlib's luaL_check*,
** luaL_opt*, luaL_argerror and luaL_typeerror (and so luaL_argcheck, luaL_argexpected) here for
** every file that includes it: a wrong argument reaching C is {kind = "usage", message =
** "bad argument #1 to 'decode' (string expected, got number)"}, which the CLI reports in one line
** with exit status 2, instead of a plain string. The messages are lauxlib's.
*/
#include <string.h>
#define OPSH_LAUXLIB_CHECKS   /* this file is what the macros point to */
#include "opsh.h"

/* [-0, +0|1, m] the running C function's name as a loaded module's field ("json.array"), pushed,
** when it is one: what a call through pcall or a tail call gives no name for */
static const char *push_module_name(lua_State *L, lua_Debug *ar) {
  int top = lua_gettop(L);
  lua_getinfo(L, "f", ar);
  int fn = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, fn)) {
          const char *mod = lua_tostring(L, -4), *field = lua_tostring(L, -2);
          const char *name = strcmp(mod, "_G") == 0 ? lua_pushstring(L, field)
                                                     : lua_pushfstring(L, "%s.%s", mod, field);
          lua_replace(L, top + 1);
          lua_settop(L, top + 1);
          return name;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return NULL;
}

int opsh_argerror(lua_State *L, int arg, const char *extramsg) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar))   /* no stack frame? */
    return opsh_error(L, "usage", "bad argument #%d (%s)", arg, extramsg);
  lua_getinfo(L, "n", &ar);
  if (ar.namewhat && strcmp(ar.namewhat, "method") == 0) {
    arg--;   /* do not count 'self' */
    if (arg == 0)
      return opsh_error(L, "usage", "calling '%s' on bad self (%s)", ar.name ? ar.name : "?", extramsg);
  }
  const char *name = ar.name;
  if (!name) name = push_module_name(L, &ar);
  return opsh_error(L, "usage", "bad argument #%d to '%s' (%s)", arg, name ? name : "?", extramsg);
}

int opsh_typeerror(lua_State *L, int arg, const char *tname) {
  const char *typearg;
  if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) typearg = lua_tostring(L, -1);
  else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) typearg = "light userdata";
  else typearg = luaL_typename(L, arg);
  return opsh_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", tname, typearg));
}

static void tag_error(lua_State *L, int arg, int tag) { opsh_typeerror(L, arg, lua_typename(L, tag)); }

void opsh_checktype(lua_State *L, int arg, int t) {
  if (lua_type(L, arg) != t) tag_error(L, arg, t);
}

void opsh_checkany(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNONE) opsh_argerror(L, arg, "value expected");
}

const char *opsh_checklstring(lua_State *L, int arg, size_t *len) {
  const char *s = lua_tolstring(L, arg, len);
  if (!s) tag_error(L, arg, LUA_TSTRING);
  return s;
}

const char *opsh_optlstring(lua_State *L, int arg, const char *def, size_t *len) {
  if (lua_isnoneornil(L, arg)) {
    if (len) *len = def ? strlen(def) : 0;
    return def;
  }
  return opsh_checklstring(L, arg, len);
}

lua_Number opsh_checknumber(lua_State *L, int arg) {
  int isnum;
  lua_Number d = lua_tonumberx(L, arg, &isnum);
  if (!isnum) tag_error(L, arg, LUA_TNUMBER);
  return d;
}

lua_Number opsh_optnumber(lua_State *L, int arg, lua_Number def) {
  return lua_isnoneornil(L, arg) ? def : opsh_checknumber(L, arg);
}

lua_Integer opsh_checkinteger(lua_State *L, int arg) {
  int isnum;
  lua_Integer d = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_isnumber(L, arg)) opsh_argerror(L, arg, "number has no integer representation");
    else tag_error(L, arg, LUA_TNUMBER);
  }
  return d;
}

lua_Integer opsh_optinteger(lua_State *L, int arg, lua_Integer def) {
  return lua_isnoneornil(L, arg) ? def : opsh_checkinteger(L, arg);
}

void *opsh_checkudata(lua_State *L, int arg, const char *tname) {
  void *p = luaL_testudata(L, arg, tname);
  if (!p) opsh_typeerror(L, arg, tname);
  return p;
}

int opsh_checkoption(lua_State *L, int arg, const char *def, const char *const lst[]) {
  const char *name = def ? opsh_optlstring(L, arg, def, NULL) : opsh_checklstring(L, arg, NULL);
  for (int i = 0; lst[i]; i++)
    if (strcmp(lst[i], name) == 0) return i;
  return opsh_argerror(L, arg, lua_pushfstring(L, "invalid option '%s'", name));
}
