/*
** sched.c — tasks (coroutines) on the libuv loop: spawning, the ready queue, the yield helper
** every binding suspends through, waking, cancellation and Ctrl-C.
** A task userdata keeps its coroutine and outcome in user values:
**   1 thread, 2 results {n=} or the error, 3 waiters {task -> gen}, 4 held objects (weak), 5 traceback
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "runtime.h"

enum { UV_THREAD = 1, UV_OUTCOME, UV_WAITERS, UV_HELD, UV_TRACEBACK, UV_COUNT = UV_TRACEBACK };

opsh_runtime *opsh_rt;

#define task_current_of(L) (*(opsh_task **)lua_getextraspace(L))

const char *opsh_task_status_name(int status) {
  static const char *const names[] = {"ready", "running", "suspended", "done", "failed", "cancelled"};
  return names[status];
}

int opsh_task_finished(opsh_task *t) { return t->status >= OPSH_TASK_DONE; }
lua_State *opsh_task_thread(opsh_task *t) { return t->co; }
int opsh_task_status(opsh_task *t) { return t->status; }
opsh_task *opsh_task_current(lua_State *L) { return task_current_of(L); }

opsh_task *opsh_task_check(lua_State *L, const char *what) {
  opsh_task *t = task_current_of(L);
  if (!t)
    opsh_error(L, "usage", "%s must run inside an opsh task (a script, opsh.spawn, or the REPL), "
               "not in a coroutine of its own", what);
  if (!lua_isyieldable(L))
    opsh_error(L, "usage", "%s cannot wait here: it was called through a C function that cannot "
               "yield (require, table.sort, a __gc or __close handler)", what);
  return t;
}

/* ---- the ready queue ---- */

static void ready_remove(opsh_task *t) {
  opsh_runtime *R = opsh_rt;
  if (!(t->prev || t->next || R->ready_head == t)) return;
  if (t->prev) t->prev->next = t->next; else R->ready_head = t->next;
  if (t->next) t->next->prev = t->prev; else R->ready_tail = t->prev;
  t->prev = t->next = NULL;
}

static void on_idle(uv_idle_t *h);

static void ready_push(opsh_task *t) {
  opsh_runtime *R = opsh_rt;
  ready_remove(t);
  t->prev = R->ready_tail;
  t->next = NULL;
  if (R->ready_tail) R->ready_tail->next = t; else R->ready_head = t;
  R->ready_tail = t;
  t->turn = R->turn;
  if (!uv_is_active((uv_handle_t *)&R->idle)) uv_idle_start(&R->idle, on_idle);
}

/* ---- finishing ---- */

static void free_timer(uv_handle_t *h) { free(h); }

/* [-0, +0, -] the task's userdata onto L's stack */
static void push_task(lua_State *L, opsh_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
}

/* [-0, +0, -] wake every task waiting on the task at idx (if still waiting for it) */
static void wake_waiters(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, UV_WAITERS) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      opsh_task *w = lua_touserdata(L, -2);
      if (w->status == OPSH_TASK_SUSPENDED && w->gen == (unsigned)lua_tointeger(L, -1))
        opsh_task_wake(w, 0);
      lua_pop(L, 1);
    }
    lua_pushnil(L);
    lua_setiuservalue(L, idx, UV_WAITERS);
  }
  lua_pop(L, 1);
}

/* [-1, +0, -] the task ends with the outcome at the top of L (results table or error) */
static void task_finish(lua_State *L, opsh_task *t, int status) {
  push_task(L, t);
  lua_rotate(L, -2, 1);
  int idx = lua_gettop(L) - 1;
  lua_setiuservalue(L, idx, UV_OUTCOME);
  t->status = status;
  t->cancel = NULL;
  ready_remove(t);
  if (t->timer) {
    uv_close((uv_handle_t *)t->timer, free_timer);
    t->timer = NULL;
  }
  task_current_of(t->co) = NULL;
  t->co = NULL;
  lua_pushnil(L);
  lua_setiuservalue(L, idx, UV_THREAD);   /* the coroutine can be collected now */
  wake_waiters(L, idx);
  luaL_unref(L, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
  if (t->live_prev) t->live_prev->live_next = t->live_next; else opsh_rt->live = t->live_next;
  if (t->live_next) t->live_next->live_prev = t->live_prev;
  t->live_prev = t->live_next = NULL;
  opsh_rt->live_tasks--;
  lua_pop(L, 1);
}

/* [-0, +0, -] close every object the task registered with opsh_task_hold */
static void close_held(lua_State *L, int idx) {
  if (lua_getiuservalue(L, idx, UV_HELD) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pop(L, 1);
      if (luaL_getmetafield(L, -1, "__close") != LUA_TNIL) {
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
      }
    }
  }
  lua_pop(L, 1);
}

/* ---- running a task ---- */

static void task_step(lua_State *L, opsh_task *t) {
  opsh_runtime *R = opsh_rt;
  lua_State *co = t->co;
  int nres, nargs = t->nargs;
  t->nargs = 0;
  t->status = OPSH_TASK_RUNNING;
  R->running = t;
  int st = lua_resume(co, L, nargs, &nres);
  R->running = NULL;
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->status != OPSH_TASK_SUSPENDED) {
      /* a bare coroutine.yield() at task level: let the others run, then continue */
      t->status = OPSH_TASK_READY;
      ready_push(t);
    }
    return;
  }
  if (st == LUA_OK) {
    lua_createtable(L, nres, 1);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    for (int i = nres; i >= 1; i--) {
      lua_xmove(co, L, 1);
      lua_rawseti(L, -2, i);
    }
    task_finish(L, t, OPSH_TASK_DONE);
    return;
  }
  lua_xmove(co, L, 1);   /* the error */
  int eidx = lua_gettop(L);
  const char *msg = lua_type(L, eidx) == LUA_TSTRING ? lua_tostring(L, eidx) : luaL_tolstring(L, eidx, NULL);
  luaL_traceback(L, co, msg, 0);
  push_task(L, t);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, UV_TRACEBACK);
  lua_settop(L, eidx);
  lua_resetthread(co);   /* run the <close> variables the error skipped */
  task_finish(L, t, OPSH_TASK_FAILED);
}

static void on_idle(uv_idle_t *h) {
  opsh_runtime *R = opsh_rt;
  lua_State *L = R->L;
  /* run only what was ready when this turn began, so I/O gets polled between turns */
  unsigned turn = ++R->turn;
  if (R->before_turn && R->ready_head) R->before_turn();
  while (R->ready_head && R->ready_head->turn != turn) {
    opsh_task *t = R->ready_head;
    ready_remove(t);
    if (t->status == OPSH_TASK_READY) task_step(L, t);
  }
  if (!R->ready_head) uv_idle_stop(h);
}

/* ---- the C API ---- */

int opsh_yield(lua_State *L, opsh_cancel_fn cancel, void *ud, lua_KContext ctx, lua_KFunction k) {
  opsh_task *t = task_current_of(L);
  if (!t) return opsh_error(L, "usage", "cannot wait for I/O outside an opsh task");
  t->status = OPSH_TASK_SUSPENDED;
  t->cancel = cancel;
  t->cancel_ud = ud;
  t->gen++;
  return lua_yieldk(L, 0, ctx, k);
}

void opsh_task_wake(opsh_task *t, int nres) {
  if (t->status != OPSH_TASK_SUSPENDED) {
    if (t->co) lua_pop(t->co, nres);
    return;
  }
  t->status = OPSH_TASK_READY;
  t->cancel = NULL;
  t->in_suspend = 0;
  t->nargs = nres;
  ready_push(t);
}

void opsh_task_hold(lua_State *L, int idx) {
  opsh_task *t = task_current_of(L);
  if (!t) return;
  idx = lua_absindex(L, idx);
  push_task(L, t);
  if (lua_getiuservalue(L, -1, UV_HELD) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, -3, UV_HELD);
  }
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

opsh_task *opsh_task_spawn(lua_State *L, int nargs) {
  opsh_runtime *R = opsh_rt;
  int fidx = lua_gettop(L) - nargs;
  opsh_task *t = lua_newuserdatauv(L, sizeof *t, UV_COUNT);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, OPSH_TASK_META);
  t->id = ++R->next_id;
  t->co = lua_newthread(L);
  lua_setiuservalue(L, -2, UV_THREAD);
  task_current_of(t->co) = t;
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  /* move function and arguments onto the coroutine */
  lua_insert(L, fidx);
  lua_xmove(L, t->co, nargs + 1);
  t->nargs = nargs;
  t->status = OPSH_TASK_READY;
  R->live_tasks++;
  t->live_next = R->live;
  if (R->live) R->live->live_prev = t;
  R->live = t;
  ready_push(t);
  return t;
}

void opsh_task_cancel(lua_State *L, opsh_task *t, const char *kind) {
  if (opsh_task_finished(t) || t->status == OPSH_TASK_RUNNING) return;
  if (t->status == OPSH_TASK_SUSPENDED && t->cancel) t->cancel(t->cancel_ud);
  t->cancel = NULL;
  ready_remove(t);
  t->status = OPSH_TASK_CANCELLED;
  push_task(L, t);
  int idx = lua_gettop(L);
  lua_resetthread(t->co);   /* runs its pending <close> variables */
  close_held(L, idx);
  if (strcmp(kind, "interrupted") == 0) opsh_error_push(L, kind, "interrupted");
  else opsh_error_push(L, kind, "task %d was cancelled", (int)t->id);
  task_finish(L, t, OPSH_TASK_CANCELLED);
  lua_pop(L, 1);
}

int opsh_task_push_outcome(lua_State *L, int idx) {
  opsh_task *t = opsh_task_checkud(L, idx);
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, idx, UV_OUTCOME);
  if (t->status == OPSH_TASK_DONE) {
    int n = (int)(lua_getfield(L, -1, "n"), lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, n + 1, "too many results");
    lua_pushboolean(L, 1);
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -2 - (i - 1), i);
    lua_rotate(L, -(n + 2), -1);
    lua_pop(L, 1);
    return n + 1;
  }
  t->retrieved = 1;
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  lua_getiuservalue(L, idx, UV_TRACEBACK);
  return 3;
}

void opsh_set_foreground(opsh_task *t) { opsh_rt->foreground = t; }

void opsh_cancel_all(lua_State *L) {
  opsh_runtime *R = opsh_rt;
  opsh_task *t = R->live;
  while (t) {
    opsh_task *next = t->live_next;
    if (t->status != OPSH_TASK_RUNNING) {
      opsh_task_cancel(L, t, "cancelled");
      next = R->live;   /* cancelling may finish or spawn others: start over */
      if (next == t) break;
    }
    t = next;
  }
}

void opsh_sched_run_until(lua_State *L, int idx) {
  opsh_runtime *R = opsh_rt;
  opsh_task *t = opsh_task_checkud(L, idx);
  while (!opsh_task_finished(t)) {
    int alive = uv_run(&R->loop, UV_RUN_ONCE);
    if (!alive && !opsh_task_finished(t) && !R->ready_head) {
      /* nothing is pending that could ever wake it */
      push_task(L, t);
      lua_resetthread(t->co);
      opsh_error_push(L, "deadlock", "every task is waiting and nothing can wake them "
                      "(a mutex never unlocked, or a wait on a task that waits back)");
      task_finish(L, t, OPSH_TASK_FAILED);
      lua_pop(L, 1);
    }
  }
}

/* ---- Ctrl-C ---- */

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  lua_sethook(L, NULL, 0, 0);
  opsh_error(L, "interrupted", "interrupted");
}

static void on_sigint(int sig) {
  opsh_runtime *R = opsh_rt;
  if (R->prompt_interrupt && !R->running) {
    R->prompt_interrupted = 1;
    uv_async_send(&R->interrupt);
    return;
  }
  R->interrupts++;
  if (R->interrupts >= 2) {
    static const char msg[] = "\nopsh: interrupted twice, exiting\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(130);
  }
  if (R->running && R->running->co)
    lua_sethook(R->running->co, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  uv_async_send(&R->interrupt);
}

static void on_interrupt(uv_async_t *h) {
  opsh_runtime *R = opsh_rt;
  if (R->prompt_interrupted) {
    R->prompt_interrupted = 0;
    if (R->prompt_interrupt) R->prompt_interrupt();
  }
  if (R->foreground && R->foreground->status != OPSH_TASK_RUNNING)
    opsh_task_cancel(R->L, R->foreground, "interrupted");
}

/* ---- setup ---- */

void opsh_sched_init(lua_State *L) {
  opsh_runtime *R = calloc(1, sizeof *R);
  opsh_rt = R;
  R->L = L;
  task_current_of(L) = NULL;
  uv_loop_init(&R->loop);
  uv_idle_init(&R->loop, &R->idle);
  uv_async_init(&R->loop, &R->interrupt, on_interrupt);
  uv_unref((uv_handle_t *)&R->interrupt);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void opsh_sched_close(lua_State *L) {
  opsh_runtime *R = opsh_rt;
  signal(SIGINT, SIG_DFL);
  uv_walk(&R->loop, close_walk, NULL);
  uv_run(&R->loop, UV_RUN_DEFAULT);
  uv_loop_close(&R->loop);
  free(R);
  opsh_rt = NULL;
}

uv_loop_t *opsh_loop(lua_State *L) { return &opsh_rt->loop; }

opsh_task *opsh_task_touserdata(lua_State *L, int idx) {
  return luaL_testudata(L, idx, OPSH_TASK_META);
}

opsh_task *opsh_task_checkud(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, OPSH_TASK_META);
}
