/*
** tasks.h — internal to the scheduler's files: sched.c (tasks), loop.c (the loop's life,
** signals) and pcall.c. Everything else uses opsh.h or runtime.h.
*/
#ifndef opsh_tasks_h
#define opsh_tasks_h

#include "runtime.h"

/* what the engine's continuation raises when a task resumes */
enum { INJECT_NONE, INJECT_CANCEL, INJECT_TIMEOUT };

#define task_current_of(L) (*(opsh_task **)lua_getextraspace(L))

/* scheduler work from loop callbacks runs protected: op(L, t) inside a pcall on the main state;
** returns 0 (and prints the error) if it raised */
typedef void (*sched_op)(lua_State *L, opsh_task *t);
int opsh_sched_protected(lua_State *L, sched_op op, opsh_task *t);
/* [-0, +0, -] loop time now (ms), updated */
uint64_t opsh_sched_now(void);
/* [-0, +1, -] the task's userdata */
void opsh_sched_push_task(lua_State *L, opsh_task *t);
/* [-1, +0, -] the task ends with the outcome at the top of L (results table or error) */
void opsh_sched_finish(lua_State *L, opsh_task *t, int status);
/* [-0, +0, m] end a task where it stands: its remaining <close> variables run without waiting */
void opsh_sched_hard_cancel(lua_State *L, opsh_task *t);
/* [-0, +0, m] ask for a cancellation (OPSH_CANCEL_*); 1 if this asked for it */
int opsh_sched_request_cancel(lua_State *L, opsh_task *t, int how);
/* [-0, +0, v] raise the injected error (INJECT_*) in the running task */
int opsh_sched_raise(lua_State *L, opsh_task *t, int inject);

#endif
