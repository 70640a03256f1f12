/*
** opsh.h — the engine's C API, the only header a binding needs.
** Tasks are coroutines scheduled on one libuv loop. A binding starts its I/O, then suspends
** the calling task with opsh_yield(); the I/O callback keeps its results in C and calls
** opsh_task_ready(); the binding's continuation turns them into Lua values in the resumed
** task (THE WAKE RULE, below). Errors raised to Lua are structured tables (opsh_error).
*/
#ifndef opsh_h
#define opsh_h

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

/* What the binary exports (everything else is built with hidden visibility): the modules loaded
** on first require (bindings built as shared objects) link against these. */
#define OPSH_API __attribute__((visibility("default")))

typedef struct opsh_task opsh_task;
typedef void (*opsh_cancel_fn)(void *ud);

/* ---- runtime (runtime.c; opsh_loop: loop.c) ---- */
OPSH_API lua_State *opsh_runtime_new(void);
OPSH_API void opsh_runtime_close(lua_State *L);
OPSH_API uv_loop_t *opsh_loop(lua_State *L);
/* Run fn (at the top of the stack, popped) with nargs args below it as the foreground task
** until it ends; leaves its results or error on L as ok, values... Returns the task status. */
OPSH_API int opsh_runtime_run(lua_State *L, int nargs);

/* ---- tasks (sched.c; the loop and state holds: loop.c) ---- */
enum opsh_task_status {
  OPSH_TASK_READY, OPSH_TASK_RUNNING, OPSH_TASK_SUSPENDED,
  OPSH_TASK_DONE, OPSH_TASK_FAILED, OPSH_TASK_CANCELLED
};

/* [-0, +0, -] the task running on L, or NULL outside a task (main state, nested coroutine) */
OPSH_API opsh_task *opsh_task_current(lua_State *L);
/* [-0, +0, v] the task running on L, or raises a usage error naming `what` */
OPSH_API opsh_task *opsh_task_check(lua_State *L, const char *what);
OPSH_API lua_State *opsh_task_thread(opsh_task *t);
OPSH_API int opsh_task_status(opsh_task *t);

/* [-?, +0, y] Suspend the running task until a loop callback wakes it; on wake,
** k(L, LUA_YIELD, ctx) runs in the task and returns the function's results.
** `cancel` (may be NULL) runs instead of k when the task is cancelled or a deadline cuts the
** wait off before k ran: it must stop the pending I/O (so the callback never wakes the task)
** or, after opsh_task_ready, free the results the request holds. For each opsh_yield exactly
** one of k and cancel runs. The task then resumes with the cancellation (or timeout) error
** raised at this call, so the task's <close> handlers and pcall'd cleanups run inside it and
** may wait in turn. A cancellation that is already pending makes opsh_yield call cancel and
** raise at once, so start nothing after it. */
OPSH_API int opsh_yield(lua_State *L, opsh_cancel_fn cancel, void *ud, lua_KContext ctx, lua_KFunction k);

/* THE WAKE RULE. A loop callback never calls the Lua API on a task's thread: a push there
** runs outside any protected call, and running out of memory there aborts the process.
** It keeps its results in its own C request and calls opsh_task_ready(t); the task resumes on
** a later loop turn (never from inside the callback) in the binding's k, inside lua_resume
** (protected), which turns the results into Lua values and frees the request. If the task
** is cancelled after opsh_task_ready but before k ran, the cancel function runs instead of
** k and frees them. */
OPSH_API void opsh_task_ready(opsh_task *t);

/* Deprecated (breaks the wake rule; kept for bindings not yet converted): nres values are
** already pushed on opsh_task_thread(t); the task resumes with them on top of the stack in k.
** The cancel function is disarmed by this call: if the task is cancelled before it resumes,
** the values are dropped and neither k nor cancel runs. Waking a task that is not suspended
** drops them. */
OPSH_API void opsh_task_wake(opsh_task *t, int nres);

/* [-0, +0, -] Keep the userdata at idx closed if the running task is cancelled
** (its __close metamethod is called). Held weakly: the task does not keep it alive. */
OPSH_API void opsh_task_hold(lua_State *L, int idx);

/* [-0, +0, -] The shutdown keeps the Lua state open while holds are taken: take one for
** work that reads Lua memory or calls back into the state after its task is gone (a
** thread-pool write of a Lua string), release it in the completion. Bounded wait. */
OPSH_API void opsh_hold_state(lua_State *L);
OPSH_API void opsh_release_state(lua_State *L);

/* ---- durations (duration.c) ---- */
#define OPSH_FOREVER UINT64_MAX
/* [-0, +0, v] seconds as timer milliseconds, rounded to the nearest. math.huge gives
** OPSH_FOREVER: start no timer. NaN, a negative number, or more than a uv timer holds
** (OPSH_DURATION_MAX seconds) raise a usage error naming `what`. */
OPSH_API uint64_t opsh_duration_ms(lua_State *L, lua_Number seconds, const char *what);
/* [-0, +0, v] the same for argument arg, which must be a number */
OPSH_API uint64_t opsh_checkduration(lua_State *L, int arg, const char *what);
/* [-0, +0, v] the same, def when the argument is none or nil */
OPSH_API uint64_t opsh_optduration(lua_State *L, int arg, lua_Number def, const char *what);
#define OPSH_DURATION_MAX 9.0e15   /* seconds (285 million years): ms fit a uv timer and a double */

/* ---- options tables (options.c) ---- */
/* [-0, +0, v] field `name` of the table at idx: a string (it stays referenced by the table) and
** its length (len may be NULL), or NULL when the field is nil. Any other type raises
** {kind = "usage"}: "<what>: option '<name>' must be a string, not a <type>". */
OPSH_API const char *opsh_opt_string(lua_State *L, int idx, const char *name, size_t *len, const char *what);
/* [-0, +0, v] the same, an opsh.secret accepted too (its bytes: never copy them into a message) */
OPSH_API const char *opsh_opt_secret(lua_State *L, int idx, const char *name, size_t *len, const char *what);
/* [-0, +0, v] a number field, def when nil; any other type raises {kind = "usage"} */
OPSH_API lua_Number opsh_opt_number(lua_State *L, int idx, const char *name, lua_Number def, const char *what);
/* [-0, +0, v] a duration field (seconds, def when nil) as timer milliseconds (opsh_duration_ms) */
OPSH_API uint64_t opsh_opt_duration(lua_State *L, int idx, const char *name, lua_Number def, const char *what);

/* ---- libuv handles ---- */
/* [-0, +0, -] close h and free `block` (h itself when it was malloc'ed alone, or the allocation
** it is embedded in) in the close callback, once libuv is done with it. Overwrites h->data. */
OPSH_API void opsh_close_free(uv_handle_t *h, void *block);

/* ---- errors (error.c) ---- */
/* [-0, +1, m] push a structured error {kind=, message=} with the opsh.error metatable */
OPSH_API void opsh_error_push(lua_State *L, const char *kind, const char *fmt, ...);
/* [-0, +0, v] raise a structured error */
OPSH_API int opsh_error(lua_State *L, const char *kind, const char *fmt, ...);
/* [-0, +0, -] set field `name` of the error at the top of the stack */
OPSH_API void opsh_error_setint(lua_State *L, const char *name, lua_Integer v);
OPSH_API void opsh_error_setstr(lua_State *L, const char *name, const char *v);
/* [-0, +0, -] is the value at idx a structured error (optionally of this kind)? */
OPSH_API int opsh_error_is(lua_State *L, int idx, const char *kind);
/* [-0, +1, m] a one-line description of any error value, for printing: a structured error's
** __tostring; a plain table {kind=, message=} as "kind: message"; "(error object is a X
** value)" when a __tostring raises or returns no string. Never raises but for memory. */
OPSH_API const char *opsh_error_describe(lua_State *L, int idx);

/* ---- secrets (secret.c) ---- */
/* [-0, +1, m] push a secret holding a copy of s */
OPSH_API void opsh_secret_push(lua_State *L, const char *s, size_t len);
/* [-0, +0, v] the bytes of a secret or plain string at idx; raises for other types */
OPSH_API const char *opsh_secret_check(lua_State *L, int idx, size_t *len);
OPSH_API int opsh_is_secret(lua_State *L, int idx);
/* [-0, +1, m] text with every value of the array at list_idx (secrets or strings) replaced by
** <redacted>, in raw, percent-encoded, JSON-escaped and base64 forms (any alignment, so the
** password inside a Basic credential is caught without its user) */
OPSH_API void opsh_scrub_push(lua_State *L, const char *text, size_t len, int list_idx);

/* ---- libraries loaded on first use (dynlib.c) ---- */
/* [-0, +0, v] dlopen the first of sonames that loads and resolve names[0..n) into slots;
** raises {kind="dependency"} when it cannot. Does nothing once *loaded is set. */
OPSH_API int opsh_dynlib_load(lua_State *L, const char *const *sonames, const char *const *names, void **slots,
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
OPSH_API extern const opsh_embedded opsh_embedded_files[];
OPSH_API const opsh_embedded *opsh_embedded_find(const char *name);

/* ---- argument checks (check.c) ---- */
/* lauxlib's checks, raising {kind = "usage"} with lauxlib's message instead of a plain string.
** The macros below point every luaL_check*, luaL_opt*, luaL_argerror, luaL_typeerror (and so
** luaL_argcheck, luaL_argexpected, luaL_checkstring...) of a file that includes opsh.h here. */
OPSH_API int opsh_argerror(lua_State *L, int arg, const char *extramsg);
OPSH_API int opsh_typeerror(lua_State *L, int arg, const char *tname);
OPSH_API void opsh_checktype(lua_State *L, int arg, int t);
OPSH_API void opsh_checkany(lua_State *L, int arg);
OPSH_API const char *opsh_checklstring(lua_State *L, int arg, size_t *len);
OPSH_API const char *opsh_optlstring(lua_State *L, int arg, const char *def, size_t *len);
OPSH_API lua_Number opsh_checknumber(lua_State *L, int arg);
OPSH_API lua_Number opsh_optnumber(lua_State *L, int arg, lua_Number def);
OPSH_API lua_Integer opsh_checkinteger(lua_State *L, int arg);
OPSH_API lua_Integer opsh_optinteger(lua_State *L, int arg, lua_Integer def);
OPSH_API void *opsh_checkudata(lua_State *L, int arg, const char *tname);
OPSH_API int opsh_checkoption(lua_State *L, int arg, const char *def, const char *const lst[]);
#ifndef OPSH_LAUXLIB_CHECKS
#define luaL_argerror opsh_argerror
#define luaL_typeerror opsh_typeerror
#define luaL_checktype opsh_checktype
#define luaL_checkany opsh_checkany
#define luaL_checklstring opsh_checklstring
#define luaL_optlstring opsh_optlstring
#define luaL_checknumber opsh_checknumber
#define luaL_optnumber opsh_optnumber
#define luaL_checkinteger opsh_checkinteger
#define luaL_optinteger opsh_optinteger
#define luaL_checkudata opsh_checkudata
#define luaL_checkoption opsh_checkoption
#endif

#define OPSH_ERROR_META "opsh.error"
#define OPSH_SECRET_META "opsh.secret"
#define OPSH_TASK_META "opsh.task"

#endif
