/*
** sched.c — tasks (coroutines) on the libuv loop: spawning, the ready queue, the yield helper
** every binding suspends through, waking, cancellation, deadlines and shields.
** A task's function runs under a pcall inside its coroutine (task_main), so an error raised
** at a wait unwinds inside the task: its <close> handlers and pcall'd cleanups may wait too.
** Cancelling a task stops its pending I/O and resumes it with the cancellation error raised
** where it waits; from then on its waits run under the cleanup deadline. The loop's life
** (setup, running until a task ends, shutdown, signals) is loop.c's; pcall and xpcall pcall.c's.
** A task userdata keeps its coroutine and outcome in user values:
**   1 thread, 2 results {n=} or the error, 3 waiters {task -> gen}, 4 held objects (weak),
**   5 traceback, 6 the cancellation error
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tasks.h"

enum { UV_THREAD = 1, UV_OUTCOME, UV_WAITERS, UV_HELD, UV_TRACEBACK, UV_CANCEL, UV_COUNT = UV_CANCEL };

opsh_runtime *opsh_rt;

const char *opsh_task_status_name(int status) {
  static const char *const names[] = {"ready", "running", "suspended", "done", "failed", "cancelled"};
  return names[status];
}

int opsh_task_finished(opsh_task *t) { return t->status >= OPSH_TASK_DONE; }
lua_State *opsh_task_thread(opsh_task *t) { return t->co; }
int opsh_task_status(opsh_task *t) { return t->status; }
opsh_task *opsh_task_current(lua_State *L) { return task_current_of(L); }
int opsh_task_cancelling(opsh_task *t) { return t->cancel_req != OPSH_CANCEL_NONE; }
int opsh_runtime_signal(void) { return opsh_rt ? (int)opsh_rt->terminate : 0; }

opsh_task *opsh_task_check(lua_State *L, const char *what) {
  opsh_task *t = task_current_of(L);
  if (!t)
    opsh_error(L, "usage", "%s must run inside an opsh task (a script, opsh.spawn, or the REPL), "
               "not in a coroutine of its own", what);
  if (!lua_isyieldable(L))
    opsh_error(L, "usage", "%s cannot wait here: it was called through a C function that cannot "
               "yield (require, table.sort, a __gc handler, or a cleanup cut off by its deadline)", what);
  return t;
}

uint64_t opsh_sched_now(void) {
  uv_update_time(&opsh_rt->loop);
  return uv_now(&opsh_rt->loop);
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

/* ---- scheduler work from loop callbacks runs protected ---- */

struct sched_call { sched_op op; opsh_task *t; };

static int protected_op(lua_State *L) {
  struct sched_call *c = lua_touserdata(L, 1);
  lua_pop(L, 1);
  c->op(L, c->t);
  return 0;
}

/* run op(L, t) from a loop callback: out of memory is reported, not a panic; 0 if it failed */
int opsh_sched_protected(lua_State *L, sched_op op, opsh_task *t) {
  struct sched_call c = {op, t};
  int top = lua_gettop(L);
  lua_pushcfunction(L, protected_op);
  lua_pushlightuserdata(L, &c);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "opsh: internal error in the scheduler: %s\n", msg ? msg : "(no message)");
  }
  lua_settop(L, top);
  return st == LUA_OK;
}

/* ---- finishing ---- */

/* [-0, +1, -] the task's userdata onto L's stack */
void opsh_sched_push_task(lua_State *L, opsh_task *t) {
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

static void close_timer(uv_timer_t **timer) {
  if (*timer) {
    opsh_close_free((uv_handle_t *)*timer, *timer);
    *timer = NULL;
  }
}

/* [-1, +0, -] the task ends with the outcome at the top of L (results table or error) */
void opsh_sched_finish(lua_State *L, opsh_task *t, int status) {
  opsh_sched_push_task(L, t);
  lua_rotate(L, -2, 1);
  int idx = lua_gettop(L) - 1;
  lua_setiuservalue(L, idx, UV_OUTCOME);
  t->status = status;
  t->cancel = NULL;
  t->in_yield = 0;
  ready_remove(t);
  close_timer(&t->timer);
  close_timer(&t->deadline_timer);
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

/* [-0, +0, -] a cancelled task ends: what it held is closed, its outcome is its cancellation */
static void finish_cancelled(lua_State *L, opsh_task *t) {
  opsh_sched_push_task(L, t);
  int idx = lua_gettop(L);
  close_held(L, idx);
  lua_getiuservalue(L, idx, UV_CANCEL);
  lua_remove(L, idx);
  opsh_sched_finish(L, t, OPSH_TASK_CANCELLED);
}

/* ---- cancellation errors and deadlines ---- */

static const char *signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "SIGINT";
}

/* [-0, +1, m] the error a cancellation raises in t */
static void push_new_cancel_error(lua_State *L, opsh_task *t, int how) {
  if (how == OPSH_CANCEL_INTERRUPTED) {
    int sig = opsh_rt->terminate ? (int)opsh_rt->terminate : (int)opsh_rt->signal;
    if (sig == SIGTERM) opsh_error_push(L, "interrupted", "terminated (SIGTERM)");
    else if (sig == SIGHUP) opsh_error_push(L, "interrupted", "hangup (SIGHUP)");
    else opsh_error_push(L, "interrupted", "interrupted");
    if (sig) opsh_error_setstr(L, "signal", signal_name(sig));
  } else {
    opsh_error_push(L, "cancelled", "task %d was cancelled", (int)t->id);
  }
}

void opsh_task_push_cancel_error(lua_State *L, opsh_task *t) {
  if (t->anchor == LUA_NOREF || !t->cancel_req) {
    lua_pushnil(L);
    return;
  }
  opsh_sched_push_task(L, t);
  lua_getiuservalue(L, -1, UV_CANCEL);
  lua_remove(L, -2);
}

/* [-0, +0, m] ask for t's cancellation: keeps its error; 0 if finished or asked already */
int opsh_sched_request_cancel(lua_State *L, opsh_task *t, int how) {
  if (opsh_task_finished(t) || t->cancel_req) return 0;
  opsh_sched_push_task(L, t);
  push_new_cancel_error(L, t, how);
  lua_setiuservalue(L, -2, UV_CANCEL);
  lua_pop(L, 1);
  t->cancel_req = how;
  return 1;
}

static void on_deadline(uv_timer_t *h);

/* [-0, +0, -] waits of t raise a timeout from loop time `at` (0: no deadline) */
static void arm_deadline(opsh_task *t, uint64_t at, lua_Number seconds, int shield) {
  t->deadline = at;
  t->deadline_s = seconds;
  t->deadline_shield = shield;
  if (!at) {
    if (t->deadline_timer) uv_timer_stop(t->deadline_timer);
    return;
  }
  if (!t->deadline_timer) {
    t->deadline_timer = malloc(sizeof *t->deadline_timer);
    if (!t->deadline_timer) return;   /* waits still check the deadline; only a pending one is not cut off */
    uv_timer_init(&opsh_rt->loop, t->deadline_timer);
    t->deadline_timer->data = t;
  }
  uint64_t now = opsh_sched_now();
  uv_timer_start(t->deadline_timer, on_deadline, at > now ? at - now : 0, 0);
}

/* [-0, +0, -] the loop time `ms` from now, or 0 for no deadline */
static uint64_t deadline_in(uint64_t ms) {
  if (ms == OPSH_FOREVER) return 0;
  uint64_t at = opsh_sched_now() + ms;
  return at ? at : 1;
}

static int deadline_passed(opsh_task *t) {
  return t->deadline && opsh_sched_now() >= t->deadline;
}

/* the cancellation is raised in t now: its cleanups run under the cleanup deadline */
static void begin_unwinding(opsh_task *t) {
  t->unwinding = 1;
  uint64_t ms = opsh_rt->cleanup_ms;
  arm_deadline(t, deadline_in(ms), ms == OPSH_FOREVER ? HUGE_VAL : (lua_Number)ms / 1000.0, 0);
}

/* [-0, +0, v] raise in the running task t what `inject` asks for */
int opsh_sched_raise(lua_State *L, opsh_task *t, int inject) {
  if (inject == INJECT_CANCEL) {
    if (!t->unwinding) begin_unwinding(t);
    opsh_task_push_cancel_error(L, t);
    return lua_error(L);
  }
  if (t->deadline_shield)
    opsh_error_push(L, "timeout", "opsh.shield: the cleanup did not finish within %f s", t->deadline_s);
  else
    opsh_error_push(L, "timeout", "cleanup of cancelled task %d did not finish within %f s", (int)t->id,
                    t->deadline_s);
  opsh_error_setstr(L, "deadline", t->deadline_shield ? "shield" : "cleanup");
  return lua_error(L);
}

/* [-0, +0, v] before t waits: raise instead if a cancellation is due or the deadline passed.
** cancel(ud) stops what the caller started for the wait. */
static void check_wait(lua_State *L, opsh_task *t, opsh_cancel_fn cancel, void *ud) {
  int inject = INJECT_NONE;
  if (t->cancel_req && !t->unwinding && !t->shield) inject = INJECT_CANCEL;
  else if (deadline_passed(t)) inject = INJECT_TIMEOUT;
  if (inject == INJECT_NONE) return;
  t->in_suspend = 0;
  if (cancel) cancel(ud);
  opsh_sched_raise(L, t, inject);
}

/* ---- running a task ---- */

/* message handler of the task's pcall: keep the traceback of where the error was raised */
static int task_msgh(lua_State *L) {
  opsh_task *t = task_current_of(L);
  if (!t || t->anchor == LUA_NOREF) return 1;
  if (t->unwinding) {
    opsh_task_push_cancel_error(L, t);
    int own = lua_rawequal(L, 1, -1);
    lua_pop(L, 1);
    if (own) return 1;
  }
  const char *msg = opsh_error_describe(L, 1);
  luaL_traceback(L, L, msg, 1);
  opsh_sched_push_task(L, t);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, UV_TRACEBACK);
  lua_settop(L, 1);
  return 1;
}

static int task_main_k(lua_State *L, int status, lua_KContext ctx) {
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);   /* cleanups have run */
  return lua_gettop(L) - 1;
}

/* the body of every task: fn(...) under a pcall in the coroutine itself */
static int task_main(lua_State *L) {
  lua_pushcfunction(L, task_msgh);
  lua_insert(L, 1);
  return task_main_k(L, lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 1, 0, task_main_k), 0);
}

/* [-0, +0, -] a table error of the structured shape {kind=, message=} without a metatable
** becomes a structured error, so everything that prints or classifies errors treats it so */
static void promote_error(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return;
  }
  int ok = lua_getfield(L, idx, "kind") == LUA_TSTRING;
  ok = (lua_getfield(L, idx, "message") == LUA_TSTRING) && ok;
  lua_pop(L, 2);
  if (ok) luaL_setmetatable(L, OPSH_ERROR_META);
}

/* resume t; L is the caller's thread (the loop's main state, or a task cancelling t) */
static void task_step(lua_State *L, opsh_task *t) {
  opsh_runtime *R = opsh_rt;
  lua_State *co = t->co;
  int nres, nargs = t->nargs;
  t->nargs = 0;
  t->status = OPSH_TASK_RUNNING;
  t->started = 1;
  opsh_task *outer = R->running;
  R->running = t;
  int st = lua_resume(co, L, nargs, &nres);
  R->running = outer;
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->status == OPSH_TASK_RUNNING) {
      /* a bare coroutine.yield() at task level: let the others run, then continue */
      t->status = OPSH_TASK_READY;
      t->in_yield = 0;
    }
    if (t->status == OPSH_TASK_READY) {
      ready_push(t);
      if (!t->in_yield && ((t->cancel_req && !t->unwinding && !t->shield) ||
                           (t->unwinding && !t->shield && deadline_passed(t))))
        opsh_sched_hard_cancel(L, t);   /* nowhere to raise the error: reset it */
    }
    return;
  }
  if (st == LUA_OK) {
    if (t->unwinding) {   /* it swallowed its cancellation and returned: cancelled all the same */
      lua_pop(co, nres);
      finish_cancelled(L, t);
      return;
    }
    luaL_checkstack(L, 3, NULL);
    lua_createtable(L, nres, 1);
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    for (int i = nres; i >= 1; i--) {
      lua_xmove(co, L, 1);
      lua_rawseti(L, -2, i);
    }
    opsh_sched_finish(L, t, OPSH_TASK_DONE);
    return;
  }
  lua_xmove(co, L, 1);   /* the error; the pcall in task_main closed what was left to close */
  int eidx = lua_gettop(L);
  if (t->unwinding) {
    opsh_task_push_cancel_error(L, t);
    if (!lua_rawequal(L, eidx, -1))
      fprintf(stderr, "opsh: task %ld: cleanup after cancellation failed: %s\n", t->id,
              opsh_error_describe(L, eidx));
    lua_settop(L, eidx - 1);
    finish_cancelled(L, t);
    return;
  }
  promote_error(L, -1);
  opsh_sched_finish(L, t, OPSH_TASK_FAILED);
}

static void step_op(lua_State *L, opsh_task *t) { task_step(L, t); }

static void on_idle(uv_idle_t *h) {
  opsh_runtime *R = opsh_rt;
  lua_State *L = R->L;
  /* run only what was ready when this turn began, so I/O gets polled between turns */
  unsigned turn = ++R->turn;
  if (R->before_turn && R->ready_head) R->before_turn();
  while (R->ready_head && R->ready_head->turn != turn) {
    opsh_task *t = R->ready_head;
    ready_remove(t);
    if (t->status == OPSH_TASK_READY) opsh_sched_protected(L, step_op, t);
  }
  if (!R->ready_head) uv_idle_stop(h);
}

/* ---- the yield helper ---- */

/* the continuation of every opsh_yield: the binding's k, or the error the task must raise */
static int engine_k(lua_State *L, int status, lua_KContext ctx) {
  opsh_task *t = task_current_of(L);
  lua_KFunction k = t->k;
  int inject = t->inject;
  t->k = NULL;
  t->inject = INJECT_NONE;
  t->in_yield = 0;
  t->cancel = NULL;   /* k runs: the cancel function no longer may */
  if (inject != INJECT_NONE) return opsh_sched_raise(L, t, inject);
  return k ? k(L, status, t->kctx) : 0;
}

/* [-0, +0, y] suspend t in state `status` (SUSPENDED: until woken; READY: until its turn) */
static int task_yield(lua_State *L, opsh_task *t, int status, opsh_cancel_fn cancel, void *ud,
                      lua_KContext ctx, lua_KFunction k) {
  t->gen++;   /* first: a wake-up registered for this wait is stale even if it raises below */
  check_wait(L, t, cancel, ud);
  t->status = status;
  t->cancel = cancel;
  t->cancel_ud = ud;
  t->k = k;
  t->kctx = ctx;
  t->in_yield = 1;
  return lua_yieldk(L, 0, 0, engine_k);
}

int opsh_yield(lua_State *L, opsh_cancel_fn cancel, void *ud, lua_KContext ctx, lua_KFunction k) {
  opsh_task *t = task_current_of(L);
  if (!t) {
    if (cancel) cancel(ud);
    return opsh_error(L, "usage", "cannot wait for I/O outside an opsh task");
  }
  return task_yield(L, t, OPSH_TASK_SUSPENDED, cancel, ud, ctx, k);
}

/* core.yield(): let the other ready tasks run first */
int opsh_core_yield(lua_State *L) {
  opsh_task *t = opsh_task_check(L, "opsh.yield");
  return task_yield(L, t, OPSH_TASK_READY, NULL, NULL, 0, NULL);
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

void opsh_task_ready(opsh_task *t) {
  if (t->status != OPSH_TASK_SUSPENDED) return;
  t->status = OPSH_TASK_READY;   /* the cancel function stays armed until k runs */
  t->in_suspend = 0;
  t->nargs = 0;
  ready_push(t);
}

void opsh_task_hold(lua_State *L, int idx) {
  opsh_task *t = task_current_of(L);
  if (!t) return;
  idx = lua_absindex(L, idx);
  opsh_sched_push_task(L, t);
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
  t->anchor = LUA_NOREF;
  t->co = lua_newthread(L);
  lua_setiuservalue(L, -2, UV_THREAD);
  luaL_checkstack(t->co, nargs + 3, "too many arguments");
  task_current_of(t->co) = t;
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  /* task_main, the function and its arguments onto the coroutine */
  lua_insert(L, fidx);
  lua_pushcfunction(t->co, task_main);
  lua_xmove(L, t->co, nargs + 1);
  t->nargs = nargs + 1;
  t->status = OPSH_TASK_READY;
  R->live_tasks++;
  t->live_next = R->live;
  if (R->live) R->live->live_prev = t;
  R->live = t;
  ready_push(t);
  return t;
}

/* ---- cancelling ---- */

/* stop t's wait so that it resumes with `inject` raised; 0 if it is not waiting in opsh_yield */
static int interrupt_wait(opsh_task *t, int inject) {
  if (!t->in_yield || (t->status != OPSH_TASK_SUSPENDED && t->status != OPSH_TASK_READY)) return 0;
  opsh_cancel_fn cancel = t->cancel;
  t->cancel = NULL;
  if (cancel) cancel(t->cancel_ud);
  if (t->status == OPSH_TASK_SUSPENDED) t->nargs = 0;   /* woken with values: engine_k drops them */
  t->inject = inject;
  t->in_suspend = 0;
  t->status = OPSH_TASK_READY;
  return 1;
}

/* end t at once: its pending I/O stops and its <close> variables run where they are, unable to wait */
void opsh_sched_hard_cancel(lua_State *L, opsh_task *t) {
  opsh_runtime *R = opsh_rt;
  if (t->in_yield && t->cancel) {
    opsh_cancel_fn cancel = t->cancel;
    t->cancel = NULL;
    cancel(t->cancel_ud);
  }
  ready_remove(t);
  if (!t->cancel_req) opsh_sched_request_cancel(L, t, OPSH_CANCEL_CANCELLED);
  t->unwinding = 1;
  t->status = OPSH_TASK_RUNNING;
  opsh_task *outer = R->running;
  R->running = t;
  lua_resetthread(t->co);   /* runs its pending <close> variables */
  R->running = outer;
  finish_cancelled(L, t);
}

/* the cancellation of t is raised in it now (t is not running, not shielded) */
static void deliver_cancel(lua_State *L, opsh_task *t) {
  begin_unwinding(t);
  if (!t->started) {
    ready_remove(t);
    finish_cancelled(L, t);   /* it never ran: nothing to clean up */
  } else if (interrupt_wait(t, INJECT_CANCEL)) {
    ready_remove(t);
    task_step(L, t);   /* its cleanups start now, and run until they wait */
  } else {
    opsh_sched_hard_cancel(L, t);
  }
}

int opsh_task_cancel(lua_State *L, opsh_task *t, const char *kind) {
  int how = strcmp(kind, "interrupted") == 0 ? OPSH_CANCEL_INTERRUPTED : OPSH_CANCEL_CANCELLED;
  if (!opsh_sched_request_cancel(L, t, how)) return 0;
  if (t->status != OPSH_TASK_RUNNING && !t->shield) deliver_cancel(L, t);
  return 1;
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
  int again = 1;
  while (again) {   /* cancelling runs cleanups, which may finish or spawn others: start over */
    again = 0;
    for (opsh_task *t = R->live; t; t = t->live_next) {
      if (!t->cancel_req && t->status != OPSH_TASK_RUNNING) {
        opsh_task_cancel(L, t, "cancelled");
        again = 1;
        break;
      }
    }
  }
}

/* ---- deadlines ---- */

static void deadline_op(lua_State *L, opsh_task *t) {
  if (opsh_task_finished(t) || !deadline_passed(t)) return;
  if (t->status == OPSH_TASK_SUSPENDED && interrupt_wait(t, INJECT_TIMEOUT)) ready_push(t);
  else if (t->status == OPSH_TASK_READY && !t->in_yield && t->unwinding && !t->shield) opsh_sched_hard_cancel(L, t);
}

static void on_deadline(uv_timer_t *h) { opsh_sched_protected(opsh_rt->L, deadline_op, h->data); }

/* ---- shields ---- */

static int shield_k(lua_State *L, int status, lua_KContext ctx) {
  opsh_task *t = task_current_of(L);
  if (t) {
    t->shield--;
    arm_deadline(t, (uint64_t)lua_tointeger(L, 2), lua_tonumber(L, 3), lua_toboolean(L, 4));
    if (!t->shield && t->cancel_req && !t->unwinding) return opsh_sched_raise(L, t, INJECT_CANCEL);
  }
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  return lua_gettop(L) - 4;
}

/* shield(fn [, timeout]) -> fn's results */
int opsh_core_shield(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  uint64_t ms = lua_isnoneornil(L, 2) ? opsh_rt->cleanup_ms : opsh_checkduration(L, 2, "opsh.shield");
  lua_Number seconds = ms == OPSH_FOREVER ? HUGE_VAL : (lua_Number)ms / 1000.0;
  opsh_task *t = task_current_of(L);
  lua_settop(L, 1);
  if (t) {
    lua_pushinteger(L, (lua_Integer)t->deadline);
    lua_pushnumber(L, t->deadline_s);
    lua_pushboolean(L, t->deadline_shield);
    t->shield++;
    arm_deadline(t, deadline_in(ms), seconds, 1);
  } else {
    lua_pushinteger(L, 0);
    lua_pushnumber(L, 0);
    lua_pushboolean(L, 0);
  }
  lua_pushvalue(L, 1);
  return shield_k(L, lua_pcallk(L, 0, LUA_MULTRET, 0, 0, shield_k), 0);
}

uv_loop_t *opsh_loop(lua_State *L) { return &opsh_rt->loop; }

opsh_task *opsh_task_touserdata(lua_State *L, int idx) {
  return luaL_testudata(L, idx, OPSH_TASK_META);
}

opsh_task *opsh_task_checkud(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, OPSH_TASK_META);
}
