/*
** pcall.c — pcall and xpcall inside tasks: they return any error but the running task's own
** cancellation, which passes through so that a cleanup cannot swallow it (docs/engine.md).
*/
#include "tasks.h"

/* [-0, +0, -] is the value at idx the running task's cancellation, raised in it? */
static int own_cancellation(lua_State *L, int idx) {
  opsh_task *t = task_current_of(L);
  if (!t || !t->unwinding || t->anchor == LUA_NOREF) return 0;
  idx = lua_absindex(L, idx);
  opsh_task_push_cancel_error(L, t);
  int own = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return own;
}

static int pcall_k(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    if (own_cancellation(L, -1)) return lua_error(L);
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int opsh_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  return pcall_k(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, pcall_k), 0);
}

/* xpcall's handler: the task's own cancellation goes by as it is, so that pcall_k sees it */
static int xpcall_msgh(lua_State *L) {
  if (own_cancellation(L, 1)) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int opsh_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, xpcall_msgh, 1);
  lua_replace(L, 2);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);   /* f, handler, true, f, args... */
  return pcall_k(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, pcall_k), 2);
}

void opsh_install_pcall(lua_State *L) {
  lua_pushcfunction(L, opsh_pcall);
  lua_setglobal(L, "pcall");
  lua_pushcfunction(L, opsh_xpcall);
  lua_setglobal(L, "xpcall");
}
