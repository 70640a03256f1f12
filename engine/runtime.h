/*
** runtime.h — engine-internal state shared by runtime.c, sched.c, the core binding and the
** REPL. Bindings include only opsh.h.
*/
#ifndef opsh_runtime_h
#define opsh_runtime_h

#include <signal.h>
#include "opsh.h"

struct opsh_task {
  lua_State *co;            /* the coroutine; NULL once finished and released */
  int anchor;               /* registry ref to the task userdata while it is alive */
  int status;               /* enum opsh_task_status */
  int nargs;                /* values on co to resume it with */
  int in_suspend;           /* suspended in core.suspend(), so core.wake() may resume it */
  unsigned gen;             /* suspension count: tells a stale wake-up from a current one */
  int retrieved;            /* its error was observed by wait() */
  long id;
  unsigned turn;            /* the scheduler turn it was queued for */
  opsh_cancel_fn cancel;    /* stops the pending I/O when cancelled while suspended */
  void *cancel_ud;
  uv_timer_t *timer;        /* sleep and wait deadlines; malloc'ed, freed in its close callback */
  struct opsh_task *prev, *next;  /* ready queue */
  struct opsh_task *live_prev, *live_next;  /* every task not yet finished */
};

typedef struct opsh_runtime {
  lua_State *L;
  uv_loop_t loop;
  uv_idle_t idle;           /* active while the ready queue is not empty */
  uv_async_t interrupt;     /* SIGINT, from the signal handler to the loop */
  opsh_task *ready_head, *ready_tail;
  opsh_task *live;          /* tasks not yet finished, newest first */
  opsh_task *running;
  opsh_task *foreground;    /* what Ctrl-C cancels */
  volatile sig_atomic_t interrupts;
  /* The REPL while its prompt waits: Ctrl-C goes to prompt_interrupt (not counted towards the
  ** second-Ctrl-C exit), and before_turn runs before ready tasks do (it erases the prompt line). */
  void (*prompt_interrupt)(void);
  void (*before_turn)(void);
  volatile sig_atomic_t prompt_interrupted;
  long next_id;
  unsigned turn;
  long live_tasks;
} opsh_runtime;

extern opsh_runtime *opsh_rt;

void opsh_error_meta(lua_State *L);
void opsh_secret_meta(lua_State *L);
void opsh_sched_init(lua_State *L);
void opsh_sched_close(lua_State *L);
/* [-(nargs+1), +1, m] create a task running the function below nargs args; pushes the task */
opsh_task *opsh_task_spawn(lua_State *L, int nargs);
/* [-0, +0, -] cancel a task that is not running; kind is "cancelled" or "interrupted" */
void opsh_task_cancel(lua_State *L, opsh_task *t, const char *kind);
/* [-0, +(1|2+), -] push a finished task's outcome: true, results... or false, err, traceback */
int opsh_task_push_outcome(lua_State *L, int taskidx);
/* run the loop until task at idx finishes */
void opsh_sched_run_until(lua_State *L, int taskidx);
void opsh_set_foreground(opsh_task *t);
/* cancel every task that has not finished (at shutdown: their pending I/O stops before the state closes) */
void opsh_cancel_all(lua_State *L);
opsh_task *opsh_task_touserdata(lua_State *L, int idx);
opsh_task *opsh_task_checkud(lua_State *L, int idx);
int opsh_task_finished(opsh_task *t);
const char *opsh_task_status_name(int status);
/* the REPL's line editor (repl.c), preloaded as opsh._repl */
int luaopen_opsh_repl(lua_State *L);

#endif
