/*
** core.c — opsh._core, the engine's own module: tasks (spawn, wait, cancel, sleep,
** suspend/wake for Lua-level synchronisation), structured errors and secrets.
** The public API is lua/opsh/init.lua; scripts do not require this module directly.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime.h"

/* ---- tasks ---- */

static uv_timer_t *task_timer(lua_State *L, opsh_task *t) {
  if (!t->timer) {
    t->timer = malloc(sizeof *t->timer);
    if (!t->timer) opsh_error(L, "memory", "out of memory");
    uv_timer_init(opsh_loop(L), t->timer);
    t->timer->data = t;
  }
  return t->timer;
}

static void on_timer_wake(uv_timer_t *h) { opsh_task_ready(h->data); }
static void stop_timer(void *ud) { uv_timer_stop(ud); }

static int sleep_k(lua_State *L, int status, lua_KContext ctx) { return 0; }

/* sleep(seconds): math.huge sleeps until the task is cancelled */
static int core_sleep(lua_State *L) {
  uint64_t ms = opsh_checkduration(L, 1, "opsh.sleep");
  opsh_task *t = opsh_task_check(L, "opsh.sleep");
  uv_timer_t *timer = task_timer(L, t);
  uv_timer_start(timer, on_timer_wake, ms, 0);   /* OPSH_FOREVER: libuv never fires it */
  return opsh_yield(L, stop_timer, timer, 0, sleep_k);
}

/* spawn(fn, ...) -> task */
static int core_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  opsh_task_spawn(L, lua_gettop(L) - 1);
  return 1;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  opsh_task *t = opsh_task_checkud(L, 1);
  opsh_task *me = opsh_task_current(L);
  if (me && me->timer) uv_timer_stop(me->timer);
  if (!opsh_task_finished(t)) {
    opsh_error_push(L, "timeout", "task %d did not finish within %s s", (int)t->id,
                    lua_tostring(L, 2));
    return lua_error(L);
  }
  int n = opsh_task_push_outcome(L, 1);
  if (lua_toboolean(L, -n)) return n - 1;
  lua_pop(L, 1);   /* traceback */
  return lua_error(L);
}

/* task:wait([timeout]) -> results of the task's function; re-raises its error */
static int task_wait(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  uint64_t ms = opsh_optduration(L, 2, HUGE_VAL, "task:wait");
  lua_settop(L, 2);
  if (opsh_task_finished(t)) return wait_k(L, LUA_OK, 0);
  opsh_task *me = opsh_task_check(L, "task:wait");
  if (me == t) return opsh_error(L, "usage", "a task cannot wait for itself");
  /* register in t's waiters with the generation of the suspension that is about to start */
  if (lua_getiuservalue(L, 1, 3) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 3);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, me->anchor);
  lua_pushinteger(L, (lua_Integer)(me->gen + 1));
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (ms != OPSH_FOREVER) uv_timer_start(task_timer(L, me), on_timer_wake, ms, 0);
  else if (me->timer) uv_timer_stop(me->timer);
  return opsh_yield(L, me->timer ? stop_timer : NULL, me->timer, 0, wait_k);
}

/* task:cancel() -> true if this cancelled it (false: it had finished or was being cancelled).
** Its cleanups start at once; task:wait() waits until they have finished. */
static int task_cancel(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  if (opsh_task_finished(t)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (t == opsh_task_current(L)) return opsh_error(L, "cancelled", "task %d cancelled itself", (int)t->id);
  lua_pushboolean(L, opsh_task_cancel(L, t, "cancelled"));
  return 1;
}

/* task:cancelling() -> true from the moment it is asked to cancel until it has finished */
static int task_cancelling(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  lua_pushboolean(L, !opsh_task_finished(t) && opsh_task_cancelling(t));
  return 1;
}

static int task_status(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  lua_pushstring(L, opsh_task_status_name(t->status));
  return 1;
}

static int task_id(lua_State *L) {
  lua_pushinteger(L, opsh_task_checkud(L, 1)->id);
  return 1;
}

/* task:result() -> ok, values... | false, err, traceback; only for a finished task */
static int task_result(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  if (!opsh_task_finished(t)) return opsh_error(L, "usage", "task %d has not finished", (int)t->id);
  return opsh_task_push_outcome(L, 1);
}

/* task:traceback() -> where a suspended or ready task is, as debug.traceback shows it; nil once finished */
static int task_traceback(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  lua_State *co = opsh_task_thread(t);
  if (!co || opsh_task_finished(t)) return 0;
  luaL_traceback(L, co, lua_pushfstring(L, "task %d (%s)", (int)t->id, opsh_task_status_name(t->status)), 0);
  return 1;
}

static int task_tostring(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  lua_pushfstring(L, "task %d (%s)", (int)t->id, opsh_task_status_name(t->status));
  return 1;
}

static int task_gc(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  if (t->status == OPSH_TASK_FAILED && !t->retrieved) {
    lua_getiuservalue(L, 1, 2);
    const char *msg = opsh_error_describe(L, -1);
    fprintf(stderr, "opsh: task %ld failed and nothing waited for it: %s\n", t->id, msg);
  }
  return 0;
}

static const luaL_Reg task_methods[] = {
  {"wait", task_wait},
  {"cancel", task_cancel},
  {"cancelling", task_cancelling},
  {"status", task_status},
  {"id", task_id},
  {"result", task_result},
  {"traceback", task_traceback},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__tostring", task_tostring},
  {"__gc", task_gc},
  {"__index", NULL},
  {NULL, NULL}
};

/* current() -> the running task, or nil outside a task */
static int core_current(lua_State *L) {
  opsh_task *t = opsh_task_current(L);
  if (!t || t->anchor == LUA_NOREF) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
  return 1;
}

static int suspend_k(lua_State *L, int status, lua_KContext ctx) {
  return lua_gettop(L) - (int)ctx;
}

/* suspend() -> the values given to wake(); the task sleeps until another wakes it */
static int core_suspend(lua_State *L) {
  opsh_task *t = opsh_task_check(L, "opsh._core.suspend");
  int base = lua_gettop(L);
  t->in_suspend = 1;
  return opsh_yield(L, NULL, NULL, base, suspend_k);
}

/* wake(task, ...) -> true if the task was suspended in suspend() and will resume with ... */
static int core_wake(lua_State *L) {
  opsh_task *t = opsh_task_checkud(L, 1);
  int n = lua_gettop(L) - 1;
  if (t->status != OPSH_TASK_SUSPENDED || !t->in_suspend) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_xmove(L, t->co, n);
  opsh_task_wake(t, n);
  lua_pushboolean(L, 1);
  return 1;
}

/* cleanup_timeout([seconds]) -> the cleanup deadline of a cancelled task (seconds), set first if given */
static int core_cleanup_timeout(lua_State *L) {
  uint64_t previous = opsh_rt->cleanup_ms;
  if (!lua_isnoneornil(L, 1)) opsh_rt->cleanup_ms = opsh_checkduration(L, 1, "opsh.cleanup_timeout");
  lua_pushnumber(L, previous == OPSH_FOREVER ? HUGE_VAL : (lua_Number)previous / 1000.0);
  return 1;
}

/* duration(seconds, what) -> seconds, or raises the usage error a timer would */
static int core_duration(lua_State *L) {
  opsh_checkduration(L, 1, luaL_optstring(L, 2, "duration"));
  lua_settop(L, 1);
  return 1;
}

/* cancelled(err) -> true if err is the running task's own cancellation, raised in it */
static int core_cancelled(lua_State *L) {
  opsh_task *t = opsh_task_current(L);
  int own = 0;
  if (t && opsh_task_cancelling(t)) {
    opsh_task_push_cancel_error(L, t);
    own = lua_rawequal(L, 1, -1);
  }
  lua_pushboolean(L, own);
  return 1;
}

static int core_foreground(lua_State *L) {
  opsh_set_foreground(lua_isnoneornil(L, 1) ? NULL : opsh_task_checkud(L, 1));
  return 0;
}

/* tasks() -> every task that has not finished, newest first */
static int core_tasks(lua_State *L) {
  lua_newtable(L);
  int n = 0;
  for (opsh_task *t = opsh_rt->live; t; t = t->live_next) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int core_stats(lua_State *L) {
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, opsh_rt->live_tasks);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, (lua_Integer)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + lua_gc(L, LUA_GCCOUNTB, 0));
  lua_setfield(L, -2, "lua_bytes");
  return 1;
}

/* hrtime() -> monotonic seconds (float) */
static int core_hrtime(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

/* ---- errors ---- */

/* error(kind, message [, fields]) -> a structured error object (not raised) */
static int core_error(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  opsh_error_push(L, kind, "%s", msg);
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  return 1;
}

/* describe(err) -> one line for any error value (never raises: a bad __tostring is survived) */
static int core_describe(lua_State *L) {
  luaL_checkany(L, 1);
  opsh_error_describe(L, 1);
  return 1;
}

static int core_is_error(lua_State *L) {
  lua_pushboolean(L, opsh_error_is(L, 1, luaL_optstring(L, 2, NULL)));
  return 1;
}

/* ---- secrets ---- */

static int core_secret(lua_State *L) {
  if (opsh_is_secret(L, 1)) {
    lua_settop(L, 1);
    return 1;
  }
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  opsh_secret_push(L, s, len);
  return 1;
}

/* reveal(secret|string) -> string; for the Lua layer's primitives that must send the value */
static int core_reveal(lua_State *L) {
  size_t len;
  const char *s = opsh_secret_check(L, 1, &len);
  lua_pushlstring(L, s, len);
  return 1;
}

/* scrub(text, {secret|string, ...}) -> text without those values in any of their usual forms */
static int core_scrub(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  opsh_scrub_push(L, text, len, 2);
  return 1;
}

static int core_is_secret(lua_State *L) {
  lua_pushboolean(L, opsh_is_secret(L, 1));
  return 1;
}

static const luaL_Reg core_funcs[] = {
  {"spawn", core_spawn},
  {"sleep", core_sleep},
  {"current", core_current},
  {"suspend", core_suspend},
  {"wake", core_wake},
  {"yield", opsh_core_yield},
  {"shield", opsh_core_shield},
  {"cleanup_timeout", core_cleanup_timeout},
  {"duration", core_duration},
  {"cancelled", core_cancelled},
  {"foreground", core_foreground},
  {"stats", core_stats},
  {"tasks", core_tasks},
  {"hrtime", core_hrtime},
  {"error", core_error},
  {"is_error", core_is_error},
  {"describe", core_describe},
  {"secret", core_secret},
  {"scrub", core_scrub},
  {"reveal", core_reveal},
  {"is_secret", core_is_secret},
  {NULL, NULL}
};

int luaopen_opsh_core(lua_State *L) {
  if (luaL_newmetatable(L, OPSH_TASK_META)) {
    luaL_setfuncs(L, task_meta, 0);
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, core_funcs);
  luaL_getmetatable(L, OPSH_ERROR_META);
  lua_setfield(L, -2, "error_meta");
  return 1;
}
