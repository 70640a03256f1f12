/*
** runtime.h — engine-internal state shared by runtime.c, sched.c, the core binding and the
** REPL. Bindings include only opsh.h.
*/
#ifndef opsh_runtime_h
#define opsh_runtime_h

#include <signal.h>
#include "opsh.h"

/* how a task is being cancelled (cancel_req) */
enum { OPSH_CANCEL_NONE, OPSH_CANCEL_CANCELLED, OPSH_CANCEL_INTERRUPTED };

struct opsh_task {
  lua_State *co;            /* the coroutine; NULL once finished and released */
  int anchor;               /* registry ref to the task userdata while it is alive */
  int status;               /* enum opsh_task_status */
  int nargs;                /* values on co to resume it with */
  int in_suspend;           /* suspended in core.suspend(), so core.wake() may resume it */
  int in_yield;             /* suspended or ready in opsh_yield: the engine's k runs on resume */
  int started;              /* resumed at least once */
  unsigned gen;             /* suspension count: tells a stale wake-up from a current one */
  int retrieved;            /* its error was observed by wait() */
  long id;
  unsigned turn;            /* the scheduler turn it was queued for */
  opsh_cancel_fn cancel;    /* stops the pending I/O (or frees held results) instead of k */
  void *cancel_ud;
  lua_KFunction k;          /* the binding's continuation while in opsh_yield */
  lua_KContext kctx;
  int inject;               /* an error to raise at the yield point when it resumes */
  int cancel_req;           /* OPSH_CANCEL_*: cancellation asked for (its error is kept) */
  int unwinding;            /* ...and raised in the task: it runs its cleanups */
  int shield;               /* depth of opsh.shield: cancellation waits until it is 0 */
  uint64_t deadline;        /* loop time (ms) from which waits raise a timeout; 0: none */
  lua_Number deadline_s;    /* the duration it came from, for the message */
  int deadline_shield;      /* set by opsh.shield (else: the cleanup deadline) */
  uv_timer_t *deadline_timer;
  uv_timer_t *timer;        /* sleep and wait deadlines; malloc'ed, freed in its close callback */
  struct opsh_task *prev, *next;  /* ready queue */
  struct opsh_task *live_prev, *live_next;  /* every task not yet finished */
};

typedef struct opsh_runtime {
  lua_State *L;
  uv_loop_t loop;
  uv_idle_t idle;           /* active while the ready queue is not empty */
  uv_async_t interrupt;     /* SIGINT, SIGTERM, SIGHUP: from the signal handler to the loop */
  opsh_task *ready_head, *ready_tail;
  opsh_task *live;          /* tasks not yet finished, newest first */
  opsh_task *running;
  opsh_task *foreground;    /* what Ctrl-C cancels */
  opsh_task *root;          /* the outermost opsh_runtime_run task: what SIGTERM/SIGHUP cancel */
  volatile sig_atomic_t interrupts;
  volatile sig_atomic_t signal;      /* the last SIGINT/SIGTERM/SIGHUP */
  volatile sig_atomic_t signalled;   /* ...not yet handled on the loop */
  volatile sig_atomic_t terminate;   /* a SIGTERM or SIGHUP arrived: the process ends */
  volatile sig_atomic_t draining;    /* shutting down: a signal exits at once */
  /* The REPL while its prompt waits: Ctrl-C goes to prompt_interrupt (not counted towards the
  ** second-Ctrl-C exit), and before_turn runs before ready tasks do (it erases the prompt line). */
  void (*prompt_interrupt)(void);
  void (*before_turn)(void);
  volatile sig_atomic_t prompt_interrupted;
  long next_id;
  unsigned turn;
  long live_tasks;
  long holds;               /* opsh_hold_state */
  uint64_t cleanup_ms;      /* the cleanup deadline of a cancelled task; OPSH_FOREVER: none */
} opsh_runtime;

extern opsh_runtime *opsh_rt;

void opsh_error_meta(lua_State *L);
void opsh_secret_meta(lua_State *L);
void opsh_sched_init(lua_State *L);
void opsh_sched_close(lua_State *L);
/* [-(nargs+1), +1, m] create a task running the function below nargs args; pushes the task */
opsh_task *opsh_task_spawn(lua_State *L, int nargs);
/* [-0, +0, m] cancel a task; kind is "cancelled" or "interrupted". A task that is not running
** resumes at once with the error raised where it waits (its cleanups run until they wait);
** a running or shielded one gets it at its next wait or when its shield ends. Returns 1 if
** this asked for the cancellation, 0 if it had finished or was being cancelled already. */
int opsh_task_cancel(lua_State *L, opsh_task *t, const char *kind);
/* [-0, +0, -] is the task being cancelled (asked, whether or not raised yet)? */
int opsh_task_cancelling(opsh_task *t);
/* [-0, +1, -] the error a cancelled task raises (nil if it is not being cancelled) */
void opsh_task_push_cancel_error(lua_State *L, opsh_task *t);
/* core.shield(fn, timeout) -> fn's results (see docs/engine.md) */
int opsh_core_shield(lua_State *L);
/* core.yield(): let the other ready tasks run first */
int opsh_core_yield(lua_State *L);
/* pcall and xpcall that pass on the running task's own cancellation instead of returning it */
void opsh_install_pcall(lua_State *L);
/* [-0, +(1|2+), -] push a finished task's outcome: true, results... or false, err, traceback */
int opsh_task_push_outcome(lua_State *L, int taskidx);
/* run the loop until task at idx finishes */
void opsh_sched_run_until(lua_State *L, int taskidx);
void opsh_set_foreground(opsh_task *t);
/* cancel every task that has not finished (at shutdown: their pending I/O stops before the state closes) */
void opsh_cancel_all(lua_State *L);
/* at shutdown: cancel what is left and run the loop until every task has finished its cleanups
** and every hold is released (bounded). 1 if the state can be closed safely. */
int opsh_sched_drain(lua_State *L);
/* the signal that ended the last run (0: none) */
int opsh_runtime_signal(void);
opsh_task *opsh_task_touserdata(lua_State *L, int idx);
opsh_task *opsh_task_checkud(lua_State *L, int idx);
int opsh_task_finished(opsh_task *t);
const char *opsh_task_status_name(int status);
/* the REPL's line editor (repl.c), preloaded as opsh._repl */
int luaopen_opsh_repl(lua_State *L);
/* package.preload loader of the bindings built as shared objects (modules.c) */
int opsh_module_load(lua_State *L);
/* its history file (history.c) */
int opsh_history_load(lua_State *L);
int opsh_history_append(lua_State *L);

#endif
