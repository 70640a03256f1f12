/*
** opsh.h — the engine's C API, the only header a binding needs.
** Tasks are coroutines scheduled on one libuv loop. A binding starts its I/O, then suspends
** the calling task with opsh_yield(); the I/O callback pushes results on the task's thread
** and calls opsh_task_wake(). Errors raised to Lua are structured tables (opsh_error).
*/
#ifndef opsh_h
#define opsh_h

#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

typedef struct opsh_task opsh_task;
typedef void (*opsh_cancel_fn)(void *ud);

/* ---- runtime (runtime.c) ---- */
lua_State *opsh_runtime_new(void);
void opsh_runtime_close(lua_State *L);
uv_loop_t *opsh_loop(lua_State *L);
/* Run fn (at the top of the stack, popped) with nargs args below it as the foreground task
** until it ends; leaves its results or error on L as ok, values... Returns the task status. */
int opsh_runtime_run(lua_State *L, int nargs);

/* ---- tasks (sched.c) ---- */
enum opsh_task_status {
  OPSH_TASK_READY, OPSH_TASK_RUNNING, OPSH_TASK_SUSPENDED,
  OPSH_TASK_DONE, OPSH_TASK_FAILED, OPSH_TASK_CANCELLED
};

/* [-0, +0, -] the task running on L, or NULL outside a task (main state, nested coroutine) */
opsh_task *opsh_task_current(lua_State *L);
/* [-0, +0, v] the task running on L, or raises a usage error naming `what` */
opsh_task *opsh_task_check(lua_State *L, const char *what);
lua_State *opsh_task_thread(opsh_task *t);
int opsh_task_status(opsh_task *t);

/* [-?, +0, y] Suspend the running task. `cancel` (may be NULL) runs if the task is cancelled
** while suspended: it must stop the pending I/O so its callback never wakes the task.
** On wake, k(L, LUA_YIELD, ctx) runs with the values the waker pushed on top of the stack. */
int opsh_yield(lua_State *L, opsh_cancel_fn cancel, void *ud, lua_KContext ctx, lua_KFunction k);

/* From a loop callback: nres values are already pushed on opsh_task_thread(t); the task
** resumes with them on the next loop turn. Waking a task that is not suspended drops them. */
void opsh_task_wake(opsh_task *t, int nres);

/* [-0, +0, -] Keep the userdata at idx closed if the running task is cancelled
** (its __close metamethod is called). Held weakly: the task does not keep it alive. */
void opsh_task_hold(lua_State *L, int idx);

/* ---- errors (error.c) ---- */
/* [-0, +1, m] push a structured error {kind=, message=} with the opsh.error metatable */
void opsh_error_push(lua_State *L, const char *kind, const char *fmt, ...);
/* [-0, +0, v] raise a structured error */
int opsh_error(lua_State *L, const char *kind, const char *fmt, ...);
/* [-0, +0, -] set field `name` of the error at the top of the stack */
void opsh_error_setint(lua_State *L, const char *name, lua_Integer v);
void opsh_error_setstr(lua_State *L, const char *name, const char *v);
/* [-0, +0, -] is the value at idx a structured error (optionally of this kind)? */
int opsh_error_is(lua_State *L, int idx, const char *kind);

/* ---- secrets (secret.c) ---- */
/* [-0, +1, m] push a secret holding a copy of s */
void opsh_secret_push(lua_State *L, const char *s, size_t len);
/* [-0, +0, v] the bytes of a secret or plain string at idx; raises for other types */
const char *opsh_secret_check(lua_State *L, int idx, size_t *len);
int opsh_is_secret(lua_State *L, int idx);
/* [-0, +1, m] text with every value of the array at list_idx (secrets or strings) replaced by
** <redacted>, in raw, percent-encoded, JSON-escaped and base64 forms (any alignment, so the
** password inside a Basic credential is caught without its user) */
void opsh_scrub_push(lua_State *L, const char *text, size_t len, int list_idx);

/* ---- libraries loaded on first use (dynlib.c) ---- */
/* [-0, +0, v] dlopen the first of sonames that loads and resolve names[0..n) into slots;
** raises {kind="dependency"} when it cannot. Does nothing once *loaded is set. */
int opsh_dynlib_load(lua_State *L, const char *const *sonames, const char *const *names, void **slots,
                     int n, int *loaded);

/* ---- embedded Lua (embedded.c, generated) ---- */
typedef struct opsh_embedded {
  const char *name;     /* "opsh.cli", "script:hello", "env:production" */
  const char *path;     /* source path relative to the repository */
  const unsigned char *code;
  size_t size;
  const char *source;   /* the source text, for `opsh scripts export` and error context */
  size_t source_size;
} opsh_embedded;
extern const opsh_embedded opsh_embedded_files[];
const opsh_embedded *opsh_embedded_find(const char *name);

#define OPSH_ERROR_META "opsh.error"
#define OPSH_SECRET_META "opsh.secret"
#define OPSH_TASK_META "opsh.task"

#endif
